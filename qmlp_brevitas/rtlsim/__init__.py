"""RTL simulation checks: FINN's generated HDL simulated with Verilator, bit-exact against FINN.

Without Vivado, FINN's own rtlsim (XSI) cannot run; the HDL that FINN generates for its RTL
layers (finn-rtllib templates filled by FINN's code generation) is simulated with Verilator
and a cocotb testbench instead, and every output word is compared with FINN's reference
execution of the layer.

* :mod:`.node` -- FINN's side: HDL generation, input streams, reference output words.
* :mod:`.patches` -- Verilator patches (``verilator_patches/``) applied to copies of the HDL.
* :mod:`.toolchain` -- Verilator builds through cocotb's runner, cached by configuration.
* :mod:`.testbench` -- the cocotb AXI-stream testbench (bubbles and back-pressure).
* :mod:`.layer` -- one layer: generate, build, stream, compare, count cycles.
* :mod:`.reference` -- FINN's execution context of a specialised model.
* :mod:`.check` -- all RTL layers of a FINN build folder, ``rtlsim.json`` and coverage.
* :mod:`.graphs` -- single-layer FINN graphs for checking the simulation itself.

Nothing here imports FINN, Verilator or cocotb at package import.
"""
