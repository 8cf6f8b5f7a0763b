// Stream duplication: every input word is handed to each of N_OUT output streams.
//
// RTL counterpart of FINN's DuplicateStreams layer (finn-hlslib StreamingDup): one word of PE
// elements per cycle, packed as FINN packs them, on the input and on every output. One register
// holds the word; a valid bit per output says which outputs still have to take it. A new word is
// accepted once every output has taken the held one (or takes it in this cycle), so the outputs
// may be back-pressured independently and the layer runs at one word per cycle when all of them
// are ready. Latency: 1 cycle.
module qmlp_dup_streams #(
	parameter int unsigned WIDTH = 8,  // bits of one stream word
	parameter int unsigned N_OUT = 2   // number of output streams
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

	logic [WIDTH-1:0]  Dat;
	logic [N_OUT-1:0]  Pending;  // outputs that have not taken Dat yet

	// an output is free when it holds nothing or hands its word over in this cycle
	assign irdy = &(~Pending | ordy);

	always_ff @(posedge clk) begin
		if (rst) begin
			Pending <= '0;
		end
		else if (ivld && irdy) begin
			Pending <= '1;
		end
		else begin
			Pending <= Pending & ~ordy;
		end
	end

	always_ff @(posedge clk) begin
		if (ivld && irdy) Dat <= idat;
	end

	assign odat = {N_OUT{Dat}};
	assign ovld = Pending;

endmodule : qmlp_dup_streams
