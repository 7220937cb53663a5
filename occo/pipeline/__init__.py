"""Pipeline plumbing: the stage entry point and process setup, command-line flags, inputs of the whole run, the
resume protocol, devices, method sources."""
