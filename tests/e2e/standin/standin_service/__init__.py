"""A minimal service process for the launcher's own tests: gRPC health + reflection on
GRPC_PORT, Prometheus metrics on METRICS_PORT, graceful SIGTERM like the real runtime.

Knobs: STANDIN_EXIT_AFTER=<seconds> exits with code 3 after SERVING (a crash);
STANDIN_NEVER_READY=1 stays NOT_SERVING; STANDIN_IGNORE_SIGTERM=1 never stops by itself."""
