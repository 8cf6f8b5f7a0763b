"""FINN dataflow flow for Q-MLP and other Brevitas models (finn-plus used as a library).

Nothing here imports FINN at package import: :func:`qmlp_brevitas.finn.settings.setup_finn`
prepares finn-plus (settings, Vivado-less operation) and must run before FINN modules load.

* :mod:`.settings` -- finn-plus as a library without Vivado.
* :mod:`.transforms` -- qonnx Transformations for the Q-MLP patterns FINN lacks.
* :mod:`.steps` -- custom build steps used beside FINN's built-in steps.
* :mod:`.build` -- the ``DataflowBuildConfig`` and the build itself.
* :mod:`.report` -- the per-layer summary table and ``summary.json``.
* :mod:`.layer_costs`, :mod:`.cost_models`, :mod:`.parts` -- every layer costed (FINN's
  estimates, the project's models, synthesis), part capacities.
* :mod:`.folding_search` -- the highest-fps folding within a resource budget.
* :mod:`.synth` -- Yosys synthesis of FINN's RTL layers.
* :mod:`.fast_lookups` -- qonnx's graph look-ups in constant time during a build.
* :mod:`.plain_mlp` -- a plain quantized MLP (like FINN's TFC) to show the flow is generic.
"""
