"""Risk scans: submit a file or text to the AI service, keep and list the results."""
