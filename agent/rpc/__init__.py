"""Generated gRPC stubs for proto/cairn/agent/v1 (make proto). Never edit by hand."""
