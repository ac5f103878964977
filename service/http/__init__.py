"""The HTTP edge: the outermost middleware, problem+json errors, the OpenAPI document and its pages,
the request-head guard in front of uvicorn, form reading and the patterns OpenAPI publishes."""
