"""A run's directory: its name, its lock, the records it writes and reads back (the report
reads runs only through `records`), files a kill never tears, and restarts."""
