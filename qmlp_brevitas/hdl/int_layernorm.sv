// Integer LayerNorm over the channels of each token, streamed SIMD channels per word.
//
// The arithmetic is qmlp_brevitas.intnorm (its docstring has the algorithm and every width;
// the widths below come from there, through the generated wrapper): for a token of C signed
// integers x_i,
//   S1 = sum x_i, S2 = sum x_i^2, N = C*S2 - S1^2 + EPS, r = floor(2^K / sqrt(N)),
//   y_i = ((C*x_i - S1) * r + 2^(SHIFT-1)) >>> SHIFT.
//
// Three stages, each working on a different token:
//   1. input: accumulates S1 and S2 over the C/SIMD words of a token, stores the words in a
//      FIFO (DEPTH words) and hands (S1, S2) to a 2-entry queue;
//   2. inverse square root: N, then r bit by bit from bit K down to 0 as the largest r with
//      r^2 * N <= 4^K, ITERS bits per clock, with shifts and adds only (P = r^2 N, A = r N 2^(j+1),
//      B = N 4^j; setting bit j: P += A + B, A = A/2 + B; always B = B/4). A token takes
//      ceil((K+1)/ITERS) + 2 clocks here; (S1, r) go to a 2-entry queue;
//   3. output: reads the token's words back, y = (C*x - S1) * r rounded and shifted, in a
//      3-deep pipeline (centre, multiply, round) that stalls as a whole on back-pressure.
// A token goes in at one word per clock; its first word comes out ceil((K+1)/ITERS) + 7
// clocks after its last word went in. With ITERS chosen so that stage 2 needs at most
// C/SIMD clocks per token, the layer streams at C/SIMD clocks per token.
module int_layernorm #(
    int unsigned C = 64,
    int unsigned SIMD = 1,
    int unsigned IN_BITS = 5,  // input element width
    bit IN_SIGNED = 1,  // input elements are signed (else unsigned)
    int unsigned SUM_BITS = 12,  // S1 (signed)
    int unsigned SQ_BITS = 15,  // S2 (unsigned)
    int unsigned N_BITS = 21,  // N (unsigned)
    int unsigned D_BITS = 13,  // C*x - S1 (signed)
    int unsigned K = 22,  // r = floor(2^K / sqrt(N)), K+1 bits
    int unsigned SHIFT = 14,  // K - F
    int unsigned OUT_BITS = 12,  // signed output element width
    logic [63:0] EPS = 0,  // integer epsilon
    int unsigned ITERS = 1,  // square-root bits per clock
    int unsigned DEPTH = 132  // input FIFO words (at least C/SIMD)
) (
    input logic clk,
    input logic rst_n,

    input  logic [SIMD*IN_BITS-1:0] s_tdata,
    input  logic                    s_tvalid,
    output logic                    s_tready,

    output logic [SIMD*OUT_BITS-1:0] m_tdata,
    output logic                     m_tvalid,
    input  logic                     m_tready
);
  localparam int unsigned FOLD = C / SIMD;
  localparam int unsigned BEAT_BITS = FOLD > 1 ? $clog2(FOLD) : 1;
  localparam int unsigned PTR_BITS = DEPTH > 1 ? $clog2(DEPTH) : 1;
  localparam int unsigned W_BITS = SIMD * IN_BITS;
  localparam int unsigned R_BITS = K + 1;
  localparam int unsigned P_BITS = N_BITS + 2 * K + 3;  // P, A, B and their trial sum
  localparam int unsigned V_BITS = N_BITS + 2;  // signed working width of N
  localparam int unsigned PROD_BITS = D_BITS + R_BITS + 1;
  localparam logic [P_BITS-1:0] LIMIT = P_BITS'(1) << (2 * K);
  localparam int unsigned STEPS = (R_BITS + ITERS - 1) / ITERS;

  // lane k of a stream word, extended to a signed IN_BITS+1-bit integer
  function automatic logic signed [IN_BITS:0] lane(input logic [SIMD*IN_BITS-1:0] word,
                                                   input int k);
    automatic logic [IN_BITS-1:0] raw = word[k*IN_BITS+:IN_BITS];
    return $signed({IN_SIGNED ? raw[IN_BITS-1] : 1'b0, raw});
  endfunction

  // ---------------------------------------------------------------------------------------
  // 1. Input: statistics and word FIFO
  logic [W_BITS-1:0] fifo_mem[DEPTH];
  logic [PTR_BITS-1:0] wr_ptr, rd_ptr;
  logic [PTR_BITS:0] fifo_count;
  logic [BEAT_BITS-1:0] in_beat;
  logic in_last, in_fire;
  logic signed [SUM_BITS-1:0] acc_s1, beat_s1, tok_s1;
  logic [SQ_BITS-1:0] acc_s2, beat_s2, tok_s2;

  // statistics queue (2 entries)
  logic signed [SUM_BITS-1:0] sq_s1[2];
  logic [SQ_BITS-1:0] sq_s2[2];
  logic [1:0] sq_count;
  logic sq_rd_idx, sq_wr_idx, sq_push, sq_pop;

  always_comb begin
    beat_s1 = '0;
    beat_s2 = '0;
    for (int k = 0; k < SIMD; k++) begin
      automatic logic signed [IN_BITS:0] x = lane(s_tdata, k);
      automatic logic signed [2*IN_BITS+1:0] xx = x * x;
      beat_s1 = beat_s1 + SUM_BITS'(x);
      beat_s2 = beat_s2 + SQ_BITS'($unsigned(xx));
    end
  end

  logic fifo_pop;
  assign in_last = in_beat == BEAT_BITS'(FOLD - 1);
  assign s_tready = (fifo_count < (PTR_BITS + 1)'(DEPTH)) && !(in_last && sq_count == 2'd2);
  assign in_fire = s_tvalid && s_tready;
  assign tok_s1 = acc_s1 + beat_s1;
  assign tok_s2 = acc_s2 + beat_s2;
  assign sq_push = in_fire && in_last;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      in_beat <= '0;
      acc_s1 <= '0;
      acc_s2 <= '0;
      wr_ptr <= '0;
    end else if (in_fire) begin
      fifo_mem[wr_ptr] <= s_tdata;
      wr_ptr <= wr_ptr == PTR_BITS'(DEPTH - 1) ? '0 : wr_ptr + 1'b1;
      if (in_last) begin
        in_beat <= '0;
        acc_s1 <= '0;
        acc_s2 <= '0;
      end else begin
        in_beat <= in_beat + 1'b1;
        acc_s1 <= tok_s1;
        acc_s2 <= tok_s2;
      end
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      fifo_count <= '0;
    end else begin
      fifo_count <= fifo_count + (PTR_BITS + 1)'(in_fire) - (PTR_BITS + 1)'(fifo_pop);
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      sq_count <= '0;
      sq_rd_idx <= 1'b0;
      sq_wr_idx <= 1'b0;
    end else begin
      if (sq_push) begin
        sq_s1[sq_wr_idx] <= tok_s1;
        sq_s2[sq_wr_idx] <= tok_s2;
        sq_wr_idx <= ~sq_wr_idx;
      end
      if (sq_pop) sq_rd_idx <= ~sq_rd_idx;
      sq_count <= sq_count + 2'(sq_push) - 2'(sq_pop);
    end
  end

  // ---------------------------------------------------------------------------------------
  // 2. Inverse square root
  typedef enum logic [1:0] {
    IDLE,
    RUN,
    DONE
  } state_t;
  state_t state;
  logic signed [SUM_BITS-1:0] rs_s1;
  logic [P_BITS-1:0] rs_p, rs_a, rs_b, nx_p, nx_a, nx_b;
  logic [R_BITS-1:0] rs_r, nx_r;
  logic [$clog2(STEPS+1)-1:0] rs_step;
  logic signed [V_BITS-1:0] head_n;

  // result queue (2 entries)
  logic signed [SUM_BITS-1:0] rq_s1[2];
  logic [R_BITS-1:0] rq_r[2];
  logic [1:0] rq_count;
  logic rq_rd_idx, rq_wr_idx, rq_push, rq_pop;

  always_comb begin
    automatic logic signed [SUM_BITS-1:0] s1 = sq_s1[sq_rd_idx];
    automatic logic signed [V_BITS-1:0] s1_sq = V_BITS'(s1) * V_BITS'(s1);
    automatic logic signed [V_BITS-1:0] c_s2 = V_BITS'(C) * $signed({1'b0, sq_s2[sq_rd_idx]});
    head_n = c_s2 - s1_sq + $signed(V_BITS'(EPS));
  end

  always_comb begin
    nx_p = rs_p;
    nx_a = rs_a;
    nx_b = rs_b;
    nx_r = rs_r;
    for (int u = 0; u < ITERS; u++) begin
      automatic logic [P_BITS-1:0] trial = nx_p + nx_a + nx_b;
      automatic logic take = trial <= LIMIT;
      // bits beyond bit 0 in the last step (ITERS not dividing K+1) are skipped
      if (int'(rs_step) * ITERS + u < R_BITS) begin
        nx_r = {nx_r[R_BITS-2:0], take};
        if (take) begin
          nx_p = trial;
          nx_a = (nx_a >> 1) + nx_b;
        end else begin
          nx_a = nx_a >> 1;
        end
        nx_b = nx_b >> 2;
      end
    end
  end

  assign sq_pop  = state == IDLE && sq_count != 2'd0;
  assign rq_push = state == DONE && rq_count != 2'd2;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      state <= IDLE;
    end else begin
      case (state)
        IDLE:
        if (sq_pop) begin
          rs_s1 <= sq_s1[sq_rd_idx];
          rs_p <= '0;
          rs_a <= '0;
          rs_b <= P_BITS'($unsigned(head_n[N_BITS-1:0])) << (2 * K);
          rs_r <= '0;
          rs_step <= '0;
          state <= RUN;
        end
        RUN: begin
          rs_p <= nx_p;
          rs_a <= nx_a;
          rs_b <= nx_b;
          rs_r <= nx_r;
          rs_step <= rs_step + 1'b1;
          if (int'(rs_step) == STEPS - 1) state <= DONE;
        end
        DONE: if (rq_push) state <= IDLE;
        default: state <= IDLE;
      endcase
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      rq_count <= '0;
      rq_rd_idx <= 1'b0;
      rq_wr_idx <= 1'b0;
    end else begin
      if (rq_push) begin
        rq_s1[rq_wr_idx] <= rs_s1;
        rq_r[rq_wr_idx] <= rs_r;
        rq_wr_idx <= ~rq_wr_idx;
      end
      if (rq_pop) rq_rd_idx <= ~rq_rd_idx;
      rq_count <= rq_count + 2'(rq_push) - 2'(rq_pop);
    end
  end

  // ---------------------------------------------------------------------------------------
  // 3. Output: read, centre, multiply, round; the whole pipeline stalls on back-pressure
  logic advance, issue;
  logic [BEAT_BITS-1:0] out_beat;
  logic v0, v1, v2;
  logic [W_BITS-1:0] st0_x;
  logic signed [SUM_BITS-1:0] st0_s1;
  logic [R_BITS-1:0] st0_r, st1_r;
  logic signed [D_BITS-1:0] st1_d[SIMD];
  logic signed [PROD_BITS-1:0] st2_p[SIMD];

  assign advance = !m_tvalid || m_tready;
  assign issue = advance && rq_count != 2'd0 && fifo_count != '0;
  assign fifo_pop = issue;
  assign rq_pop = issue && out_beat == BEAT_BITS'(FOLD - 1);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      out_beat <= '0;
      rd_ptr <= '0;
      v0 <= 1'b0;
      v1 <= 1'b0;
      v2 <= 1'b0;
      m_tvalid <= 1'b0;
    end else if (advance) begin
      v0 <= issue;
      v1 <= v0;
      v2 <= v1;
      m_tvalid <= v2;
      if (issue) begin
        rd_ptr <= rd_ptr == PTR_BITS'(DEPTH - 1) ? '0 : rd_ptr + 1'b1;
        out_beat <= out_beat == BEAT_BITS'(FOLD - 1) ? '0 : out_beat + 1'b1;
      end
    end
  end

  always_ff @(posedge clk) begin
    if (advance) begin
      st0_x  <= fifo_mem[rd_ptr];
      st0_s1 <= rq_s1[rq_rd_idx];
      st0_r  <= rq_r[rq_rd_idx];
      st1_r  <= st0_r;
      for (int k = 0; k < SIMD; k++) begin
        automatic logic signed [IN_BITS:0] x = lane(st0_x, k);
        automatic logic signed [D_BITS-1:0] cx = D_BITS'(x) * $signed(D_BITS'(C));
        st1_d[k] <= cx - D_BITS'(st0_s1);
        st2_p[k] <= PROD_BITS'(st1_d[k]) * $signed({1'b0, st1_r});
        m_tdata[k*OUT_BITS+:OUT_BITS] <=
            OUT_BITS'((st2_p[k] + (PROD_BITS'(1) <<< (SHIFT - 1))) >>> SHIFT);
      end
    end
  end
endmodule
