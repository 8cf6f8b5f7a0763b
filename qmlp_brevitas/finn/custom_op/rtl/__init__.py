"""``_rtl`` layers in the domain ``qmlp_brevitas.finn.custom_op.rtl``, as FINN's
``finn.custom_op.fpgadataflow.rtl``.

The specialisation of the project's own HW op:

* :class:`IntLayerNorm_rtl` -- the project's ``IntLayerNorm`` (``int_layernorm.sv``).

RTL variants of FINN HW layers that finn-plus has only as HLS; each subclasses FINN's own HW op
(so Python execution, shapes, folding and data types are FINN's) and FINN's ``RTLBackend``, with
a SystemVerilog core in ``qmlp_brevitas/hdl/``:

* :class:`DuplicateStreams_rtl` -- FINN's ``DuplicateStreams`` (``qmlp_dup_streams.sv``);
* :class:`StreamingSplit_rtl` -- FINN's ``StreamingSplit`` (``qmlp_split_streams.sv``);
* :class:`StreamingConcat_rtl` -- FINN's ``StreamingConcat`` (``qmlp_concat_streams.sv``);
* :class:`GlobalAccPool_rtl` -- FINN's ``GlobalAccPool`` (``qmlp_global_acc_pool.sv``).

qonnx's ``getCustomOp`` imports this module for a node of this domain and looks the op type up in
``custom_op``. FINN must be set up (settings) before a layer generates HDL.
"""

from .duplicatestreams_rtl import DuplicateStreams_rtl
from .globalaccpool_rtl import GlobalAccPool_rtl
from .int_layernorm_rtl import IntLayerNorm_rtl
from .streamingconcat_rtl import StreamingConcat_rtl
from .streamingsplit_rtl import StreamingSplit_rtl

custom_op = {
    "DuplicateStreams_rtl": DuplicateStreams_rtl,
    "GlobalAccPool_rtl": GlobalAccPool_rtl,
    "IntLayerNorm_rtl": IntLayerNorm_rtl,
    "StreamingConcat_rtl": StreamingConcat_rtl,
    "StreamingSplit_rtl": StreamingSplit_rtl,
}

__all__ = [
    "DuplicateStreams_rtl",
    "GlobalAccPool_rtl",
    "IntLayerNorm_rtl",
    "StreamingConcat_rtl",
    "StreamingSplit_rtl",
    "custom_op",
]
