"""jobline_tools: what operators and developers run (the `jobline` CLI, template codegen).

Installed with the package for a laptop or CI, never shipped to Lambda: the layer is built from
layers/jobline/ alone, and nothing there imports this package (tests/tools/test_layer_boundary.py).
"""
