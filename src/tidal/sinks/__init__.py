"""Where results go and how they come back out: export and summaries."""
