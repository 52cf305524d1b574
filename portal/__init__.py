"""The secure document-exchange portal: web app, workflow and command line."""

__version__ = "0.1.0"
