"""Machinery every layer shares: devices and threads, CUDA graph capture, the seed streams, atomic
file writes, process groups, progress bars and tables. It imports nothing else of the package."""
