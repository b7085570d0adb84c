"""Text front end: Festival turns text into aligned full-context labels and F0, and these into feature files."""
