"""`python -m benchmarks layers`: what each optional layer of the server costs per request."""
