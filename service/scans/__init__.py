"""Risk scans (seed 004): submit a file or text to the AI service, keep and list the results."""
