"""A tiny app with one model, so the example has something to edit in the admin."""
