"""Request plumbing below the domains: runtime, dependencies, edge and gate middleware (request
id, logs, metrics, key ring, caller, rate limit), problems, tracing. ``ecert.app`` wires it up."""
