"""FINN dataflow flow for Q-MLP and other Brevitas models (finn-plus used as a library).

Nothing here imports FINN at package import: :func:`qmlp_brevitas.finn.settings.setup_finn`
prepares finn-plus (settings, Vivado-less operation) and must run before FINN modules load.

* :mod:`.settings` -- finn-plus as a library without Vivado.
* :mod:`.transforms` -- qonnx Transformations for the Q-MLP patterns FINN lacks.
* :mod:`.steps` -- custom build steps used beside FINN's built-in steps.
* :mod:`.build` -- the ``DataflowBuildConfig`` and the build itself.
* :mod:`.report` -- the per-layer summary table and ``summary.json``.
* :mod:`.plain_mlp` -- a plain quantized MLP (like FINN's TFC) to show the flow is generic.
"""
