"""Side-by-side benchmarks of attnlab against its peers (run with `make bench` or `attnlab bench`)."""
