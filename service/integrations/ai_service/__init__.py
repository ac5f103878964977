"""The AI scan service: the client we call, and a demo service to run locally."""
