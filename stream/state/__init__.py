"""The stream worker's state: one changelog-backed table written as a journal, and the named views over it."""
