"""The command-line tools, one module each, and their console-script entry points.

========================  ============================  =====================================
console script            module                        what it does
========================  ============================  =====================================
``qmlp-train``            :mod:`.train`                 QAT of a Q-MLP model, QONNX export
``qmlp-export``           :mod:`.export`                export a run's checkpoint (QONNX, QDQ)
``qmlp-ablation``         :mod:`.ablation`              the paper's ablation (Sec. 5)
``qmlp-ranges``           :mod:`.ranges`                activation ranges per layer
``qmlp-build``            :mod:`.build`                 FINN dataflow build with estimates
``qmlp-rtlsim``           :mod:`.rtlsim`                FINN's RTL layers in Verilator
``qmlp-bench``            :mod:`.bench`                 time one QAT training step
``qmlp-design-space``     :mod:`.design_space`          accuracy against LUTs and frames/s
``qmlp-bench-build``      :mod:`.bench_build`           time the FINN build to its estimates
========================  ============================  =====================================

Each module has ``main(argv) -> int``; the entry points of :mod:`.entry_points` run it under the
shared error policy (:func:`.common.run_main`). ``scripts/*.py`` and ``fpga/*.py`` call the same
entry points.
"""
