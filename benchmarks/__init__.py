"""Side-by-side benchmarks of CompactingSupervisor, LangChain's and langmem's summarisation.

Run ``python benchmarks/run.py``; see ``benchmarks/README.md``.
"""
