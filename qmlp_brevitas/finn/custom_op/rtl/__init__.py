"""RTL variants ``X_rtl`` of FINN HW layers, domain ``qmlp_brevitas.finn.custom_op.rtl``.

Each class subclasses FINN's own HW op (so Python execution, shapes, folding and data types are
FINN's) and FINN's ``RTLBackend``, with a SystemVerilog core in ``qmlp_brevitas/hdl/``:

* :class:`DuplicateStreams_rtl` -- FINN's ``DuplicateStreams`` (``qmlp_dup_streams.sv``);
* :class:`StreamingSplit_rtl` -- FINN's ``StreamingSplit`` (``qmlp_split_streams.sv``);
* :class:`StreamingConcat_rtl` -- FINN's ``StreamingConcat`` (``qmlp_concat_streams.sv``);
* :class:`GlobalAccPool_rtl` -- FINN's ``GlobalAccPool`` (``qmlp_global_acc_pool.sv``).

qonnx's ``getCustomOp`` imports this module for a node of this domain and looks the op type up in
``custom_op``. FINN must be set up (settings) before a layer generates HDL.
"""

from .duplicatestreams_rtl import DuplicateStreams_rtl
from .globalaccpool_rtl import GlobalAccPool_rtl
from .streamingconcat_rtl import StreamingConcat_rtl
from .streamingsplit_rtl import StreamingSplit_rtl

custom_op = {
    "DuplicateStreams_rtl": DuplicateStreams_rtl,
    "GlobalAccPool_rtl": GlobalAccPool_rtl,
    "StreamingConcat_rtl": StreamingConcat_rtl,
    "StreamingSplit_rtl": StreamingSplit_rtl,
}
