// AXI-stream source for simulation: streams the hex words of a text file, one word per line.
//
// Plusargs, read at the start of the simulation:
//   +<PLUSARG>=<file>    the words to send (required)
//   +valid_pct=<0..100>  chance that a new word is offered in a cycle (default 100: full rate)
//   +frame_words=<n>     words per frame, with
//   +frame_period=<c>    frame k is offered no earlier than cycle k*c after reset (pacing;
//                        default 0: none)
// The file is read word by word as words are accepted, so its length is not limited by memory.
// TVALID, once high, stays high until the word is accepted (AXI-stream rule).
module axis_file_source #(
	parameter int unsigned  W = 8,
	parameter string  PLUSARG = "source"
)(
	input  logic          clk,
	input  logic          rst_n,
	output logic [W-1:0]  tdata,
	output logic          tvalid,
	input  logic          tready,
	output logic [63:0]   words_sent,
	output logic [63:0]   first_cycle,    // cycle of the first accepted word (after reset)
	output logic          exhausted
);
	int  fd = 0;
	int unsigned  valid_pct = 100;
	longint unsigned  frame_words = 0;
	longint unsigned  frame_period = 0;
	string  path;

	logic [W-1:0]  Buf = '0;       // the word on the bus, or the next one to offer
	logic          BufVld = 0;     // Buf holds a word not yet accepted
	logic          Offer = 0;
	longint unsigned  Cycle = 0;

	function automatic logic read_word(output logic [W-1:0] word);
		word = '0;
		if(fd == 0 || $feof(fd))  return 0;
		return $fscanf(fd, "%h\n", word) == 1;
	endfunction

	initial begin
		logic [W-1:0]  first;
		logic  ok;
		if(!$value$plusargs({PLUSARG, "=%s"}, path)) begin
			$error("axis_file_source: plusarg +%s=<file> is missing", PLUSARG);
			$finish;
		end
		fd = $fopen(path, "r");
		if(fd == 0) begin
			$error("axis_file_source: cannot open %s", path);
			$finish;
		end
		void'($value$plusargs("valid_pct=%d", valid_pct));
		void'($value$plusargs("frame_words=%d", frame_words));
		void'($value$plusargs("frame_period=%d", frame_period));
		ok = read_word(first);
		Buf = first;
		BufVld = ok;
	end

	always_ff @(posedge clk) begin
		if(!rst_n) begin
			Offer <= 0;
			words_sent <= 0;
			first_cycle <= '1;
			Cycle <= 0;
		end
		else begin
			automatic logic  gone = Offer && tready;
			automatic logic  vld = BufVld;
			automatic logic [W-1:0]  word = Buf;
			automatic longint unsigned  sent = words_sent;
			Cycle <= Cycle + 1;
			if(gone) begin
				if(sent == 0)  first_cycle <= Cycle;
				sent++;
				vld = read_word(word);
			end
			Buf <= word;
			BufVld <= vld;
			words_sent <= sent;
			if(Offer && !gone)  Offer <= 1;  // hold until accepted
			else begin
				automatic logic  paced = frame_words == 0 || frame_period == 0 ||
					Cycle + 1 >= (sent / frame_words) * frame_period;
				Offer <= vld && paced && ($urandom_range(99) < valid_pct);
			end
		end
	end

	assign	tdata = Buf;
	assign	tvalid = Offer;
	assign	exhausted = !BufVld;

endmodule : axis_file_source
