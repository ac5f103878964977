"""The served process: graceful shutdown and the garbage-collector tuning of each worker."""
