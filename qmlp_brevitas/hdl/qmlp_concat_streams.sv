// Stream concatenation along the channel axis: each output vector is FOLDS[0] words from
// input 0, then FOLDS[1] words from input 1, and so on.
//
// RTL counterpart of FINN's StreamingConcat layer: a word of SIMD elements per cycle, packed as
// FINN packs them. Inputs of narrower element types arrive already widened to the output
// element type (sign- or zero-extended per element by the layer's wrapper), so all input slots
// have the output word width. Only the input whose turn it is sees TREADY; a new word is accepted
// when the output register is empty or hands its word over in this cycle. Latency: 1 cycle.
module qmlp_concat_streams #(
	parameter int unsigned WIDTH = 8,   // bits of one output word (SIMD output elements)
	parameter int unsigned N_IN = 2,    // number of input streams
	parameter logic [32*N_IN-1:0] FOLDS = {32'd1, 32'd1},  // words per vector of input i
	                                                       // in bits [32*i +: 32]
	parameter int unsigned CNT_BITS = 1  // bits of a word counter up to the largest fold
)(
	input  logic  clk,
	input  logic  rst,

	input  logic [N_IN*WIDTH-1:0]  idat,  // input i in bits [i*WIDTH +: WIDTH]
	input  logic [N_IN-1:0]  ivld,
	output logic [N_IN-1:0]  irdy,

	output logic [WIDTH-1:0]  odat,
	output logic  ovld,
	input  logic  ordy
);

	localparam int unsigned IDX_BITS = N_IN > 1 ? $clog2(N_IN) : 1;

	logic [WIDTH-1:0]  Dat;
	logic  Vld;
	logic [IDX_BITS-1:0]  Idx;  // input whose turn it is
	logic [CNT_BITS-1:0]  Cnt;  // words of input Idx already taken in this vector

	logic [31:0]  fold_now;
	logic [WIDTH-1:0]  dat_now;
	logic  vld_now;
	always_comb begin
		fold_now = 32'd1;
		dat_now = idat[WIDTH-1:0];
		vld_now = ivld[0];
		for (int i = 0; i < N_IN; i++) begin
			if (Idx == i[IDX_BITS-1:0]) begin
				fold_now = FOLDS[32*i +: 32];
				dat_now = idat[i*WIDTH +: WIDTH];
				vld_now = ivld[i];
			end
		end
	end

	logic  free;
	assign free = !Vld || ordy;
	always_comb begin
		for (int i = 0; i < N_IN; i++) irdy[i] = free && (Idx == i[IDX_BITS-1:0]);
	end

	always_ff @(posedge clk) begin
		if (rst) begin
			Vld <= 1'b0;
			Idx <= '0;
			Cnt <= '0;
		end
		else begin
			if (Vld && ordy) Vld <= 1'b0;
			if (vld_now && free) begin
				Vld <= 1'b1;
				if (32'(Cnt) == fold_now - 32'd1) begin
					Cnt <= '0;
					Idx <= (Idx == N_IN - 1) ? '0 : Idx + 1'b1;
				end
				else begin
					Cnt <= Cnt + 1;
				end
			end
		end
	end

	always_ff @(posedge clk) begin
		if (vld_now && free) Dat <= dat_now;
	end

	assign odat = Dat;
	assign ovld = Vld;

endmodule : qmlp_concat_streams
