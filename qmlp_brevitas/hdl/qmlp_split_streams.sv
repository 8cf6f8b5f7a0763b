// Stream split along the channel axis: the words of one input vector go, in order, to
// N_OUT output streams, FOLDS[i] words to output i.
//
// RTL counterpart of FINN's StreamingSplit layer: a word of SIMD elements per cycle, packed as
// FINN packs them. Within each vector of sum(FOLDS) words, the first FOLDS[0] words go to
// output 0, the next FOLDS[1] to output 1, and so on; the element packing is unchanged. One
// output register with the index of its destination; a new word is accepted when that register
// is empty or its destination takes the held word in this cycle. Latency: 1 cycle.
module qmlp_split_streams #(
	parameter int unsigned WIDTH = 8,    // bits of one stream word (SIMD elements)
	parameter int unsigned N_OUT = 2,    // number of output streams
	parameter logic [32*N_OUT-1:0] FOLDS = {32'd1, 32'd1},  // words per vector of output i
	                                                        // in bits [32*i +: 32]
	parameter int unsigned CNT_BITS = 1  // bits of a word counter up to the largest fold
)(
	input  logic  clk,
	input  logic  rst,

	input  logic [WIDTH-1:0]  idat,
	input  logic  ivld,
	output logic  irdy,

	output logic [N_OUT*WIDTH-1:0]  odat,  // output i in bits [i*WIDTH +: WIDTH]
	output logic [N_OUT-1:0]  ovld,
	input  logic [N_OUT-1:0]  ordy
);

	localparam int unsigned IDX_BITS = N_OUT > 1 ? $clog2(N_OUT) : 1;

	logic [WIDTH-1:0]  Dat;
	logic  Vld;
	logic [IDX_BITS-1:0]  Dst;  // output of the held word
	logic [IDX_BITS-1:0]  Idx;  // output of the next input word
	logic [CNT_BITS-1:0]  Cnt;  // words of output Idx already passed in this vector

	logic [31:0]  fold_now;
	always_comb begin
		fold_now = 32'd1;
		for (int i = 0; i < N_OUT; i++) begin
			if (Idx == i[IDX_BITS-1:0]) fold_now = FOLDS[32*i +: 32];
		end
	end

	assign irdy = !Vld || ordy[Dst];

	always_ff @(posedge clk) begin
		if (rst) begin
			Vld <= 1'b0;
			Idx <= '0;
			Cnt <= '0;
		end
		else begin
			if (Vld && ordy[Dst]) Vld <= 1'b0;
			if (ivld && irdy) begin
				Vld <= 1'b1;
				if (32'(Cnt) == fold_now - 32'd1) begin
					Cnt <= '0;
					Idx <= (Idx == N_OUT - 1) ? '0 : Idx + 1'b1;
				end
				else begin
					Cnt <= Cnt + 1;
				end
			end
		end
	end

	always_ff @(posedge clk) begin
		if (ivld && irdy) begin
			Dat <= idat;
			Dst <= Idx;
		end
	end

	assign odat = {N_OUT{Dat}};
	always_comb begin
		for (int i = 0; i < N_OUT; i++) ovld[i] = Vld && (Dst == i[IDX_BITS-1:0]);
	end

endmodule : qmlp_split_streams
