// AXI-stream sink for simulation: writes every received word with the cycle it arrived in.
//
// Plusargs, read at the start of the simulation:
//   +<PLUSARG>=<file>    where to write "<cycle> <hex word>" lines (required)
//   +ready_pct=<0..100>  chance of TREADY in a cycle (default 100: no back-pressure)
// The cycle count starts at reset release. The file is closed when `finish` is high.
module axis_file_sink #(
	parameter int unsigned  W = 8,
	parameter string  PLUSARG = "sink"
)(
	input  logic          clk,
	input  logic          rst_n,
	input  logic [W-1:0]  tdata,
	input  logic          tvalid,
	output logic          tready,
	input  logic          finish,
	output logic [63:0]   words_received
);
	int  fd = 0;
	int unsigned  ready_pct = 100;
	string  path;
	logic  Rdy = 0;
	longint unsigned  Cycle = 0;

	initial begin
		if(!$value$plusargs({PLUSARG, "=%s"}, path)) begin
			$error("axis_file_sink: plusarg +%s=<file> is missing", PLUSARG);
			$finish;
		end
		fd = $fopen(path, "w");
		if(fd == 0) begin
			$error("axis_file_sink: cannot open %s", path);
			$finish;
		end
		void'($value$plusargs("ready_pct=%d", ready_pct));
	end

	always_ff @(posedge clk) begin
		if(!rst_n) begin
			Rdy <= 0;
			Cycle <= 0;
			words_received <= 0;
		end
		else begin
			Cycle <= Cycle + 1;
			if(Rdy && tvalid) begin
				$fwrite(fd, "%0d %h\n", Cycle, tdata);
				words_received <= words_received + 1;
			end
			Rdy <= ($urandom_range(99) < ready_pct);
		end
		if(finish && fd != 0) begin
			$fclose(fd);
			fd = 0;
		end
	end

	assign	tready = Rdy;

endmodule : axis_file_sink
