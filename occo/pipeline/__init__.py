"""Pipeline plumbing: the stage entry point, inputs of the whole run, resume protocol, devices, method sources."""
