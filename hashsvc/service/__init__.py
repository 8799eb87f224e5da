"""The use cases, shared by the HTTP API and the CLI so that neither re-implements them."""
