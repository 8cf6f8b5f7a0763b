// Global accumulation pool: per channel, the sum of a frame's TOKENS input vectors.
//
// RTL counterpart of FINN's GlobalAccPool layer (finn-hlslib AccPool_Batch): a word of PE
// elements per cycle in and out, packed as FINN packs them. Each vector of C = PE * FOLDS
// channels arrives as FOLDS words; a memory of FOLDS words of PE accumulators (ACC_BITS each,
// the output type) holds the partial sums. The last token's word is not written back: its sum
// goes straight to the output register, so a frame of TOKENS * FOLDS input words gives FOLDS
// output words without extra cycles. Input elements are sign- or zero-extended to ACC_BITS.
// Latency: 1 cycle after the last token's word.
module qmlp_global_acc_pool #(
	parameter int unsigned PE = 1,
	parameter int unsigned IN_BITS = 4,
	parameter bit IN_SIGNED = 1,
	parameter int unsigned ACC_BITS = 8,
	parameter int unsigned FOLDS = 1,   // words per vector (channels / PE)
	parameter int unsigned TOKENS = 1   // vectors summed per frame
)(
	input  logic  clk,
	input  logic  rst,

	input  logic [PE*IN_BITS-1:0]  idat,
	input  logic  ivld,
	output logic  irdy,

	output logic [PE*ACC_BITS-1:0]  odat,
	output logic  ovld,
	input  logic  ordy
);

	localparam int unsigned F_BITS = FOLDS > 1 ? $clog2(FOLDS) : 1;
	localparam int unsigned T_BITS = TOKENS > 1 ? $clog2(TOKENS) : 1;

	logic [PE*ACC_BITS-1:0]  Acc [FOLDS];
	logic [F_BITS-1:0]  Fold;
	logic [T_BITS-1:0]  Token;
	logic [PE*ACC_BITS-1:0]  Dat;
	logic  Vld;

	logic  first, last;
	assign first = (Token == '0);
	assign last = (32'(Token) == TOKENS - 1);

	// partial sums with this word
	logic [PE*ACC_BITS-1:0]  sum;
	logic [PE*ACC_BITS-1:0]  prev;
	assign prev = Acc[Fold];
	always_comb begin
		for (int k = 0; k < PE; k++) begin
			logic [ACC_BITS-1:0]  x;
			logic [IN_BITS-1:0]  e;
			e = idat[k*IN_BITS +: IN_BITS];
			x = IN_SIGNED ? ACC_BITS'($signed(e)) : ACC_BITS'(e);
			sum[k*ACC_BITS +: ACC_BITS] = x + (first ? '0 : prev[k*ACC_BITS +: ACC_BITS]);
		end
	end

	// a last-token word produces an output word and needs the output register
	assign irdy = !last || !Vld || ordy;

	logic  take;
	assign take = ivld && irdy;

	always_ff @(posedge clk) begin
		if (rst) begin
			Vld <= 1'b0;
			Fold <= '0;
			Token <= '0;
		end
		else begin
			if (Vld && ordy) Vld <= 1'b0;
			if (take) begin
				if (last) Vld <= 1'b1;
				if (32'(Fold) == FOLDS - 1) begin
					Fold <= '0;
					Token <= last ? '0 : Token + 1'b1;
				end
				else begin
					Fold <= Fold + 1'b1;
				end
			end
		end
	end

	always_ff @(posedge clk) begin
		if (take) begin
			if (last) Dat <= sum;
			else Acc[Fold] <= sum;
		end
	end

	assign odat = Dat;
	assign ovld = Vld;

endmodule : qmlp_global_acc_pool
