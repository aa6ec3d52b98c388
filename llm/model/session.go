package model

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// LayerActivations are the intermediate values of one transformer block for
// the tokens of one batch, each a row-major [NTokens][width] matrix. They are
// the forward pass's working buffers: by default one set is reused by every
// layer; with Session.KeepActivations each layer keeps its own, which is what
// a backward pass needs.
type LayerActivations struct {
	NTokens  int
	AttnNorm []float32 // rmsnorm(input) * attn_norm: input of the q/k/v projections [n][embd]
	Q        []float32 // query after bias and RoPE [n][heads*headDim]
	K        []float32 // key after bias and RoPE, before rounding into the F16 cache [n][headsKV*headDim]
	V        []float32 // value after bias [n][headsKV*headDim]
	Attn     []float32 // attention output, heads concatenated, input of Wo [n][heads*headDim]
	AttnOut  []float32 // Wo·Attn (+ bias) [n][embd]
	FFNIn    []float32 // residual stream after attention: input + AttnOut [n][embd]
	FFNNorm  []float32 // rmsnorm(FFNIn) * ffn_norm [n][embd]
	Gate, Up []float32 // the two FFN projections [n][ff]
	Act      []float32 // silu(Gate) * Up [n][ff]
	FFNOut   []float32 // Down·Act [n][embd]
	Out      []float32 // FFNIn + FFNOut: the block's output [n][embd]
}

func newLayerActivations(hp HParams, n int) LayerActivations {
	q, kv := hp.Heads*hp.HeadDim, hp.HeadsKV*hp.HeadDim
	return LayerActivations{
		AttnNorm: make([]float32, n*hp.Embd),
		Q:        make([]float32, n*q),
		K:        make([]float32, n*kv),
		V:        make([]float32, n*kv),
		Attn:     make([]float32, n*q),
		AttnOut:  make([]float32, n*hp.Embd),
		FFNIn:    make([]float32, n*hp.Embd),
		FFNNorm:  make([]float32, n*hp.Embd),
		Gate:     make([]float32, n*hp.FF),
		Up:       make([]float32, n*hp.FF),
		Act:      make([]float32, n*hp.FF),
		FFNOut:   make([]float32, n*hp.Embd),
		Out:      make([]float32, n*hp.Embd),
	}
}

// Session is one sequence: its KV cache and position. Sessions of the same
// Model are independent and may run concurrently; one Session must not be
// used from two goroutines at once. A Session evaluates either by itself
// (Eval, with its own worker pool and scratch, made on first use) or as an
// item of a Batcher's step.
type Session struct {
	m    *Model
	nCtx int
	pos  int

	// The KV cache holds F16 like llama.cpp's default cache, position-major:
	// k[layer][pos*kvDim + head*headDim + d].
	k, v [][]uint16

	logits []float32
	batch  int
	keep   bool
	// eng runs the session's own Evals. It is made on first use, so that
	// sessions only ever evaluated by a Batcher cost no pool or scratch.
	eng *engine
}

// ErrContextFull is returned by Eval when the tokens do not fit in the
// session's context.
var ErrContextFull = errors.New("model: context is full")

// NewSession returns a session with room for nCtx tokens (0 means the
// model's training context). Its KV cache is allocated here, once.
func (m *Model) NewSession(nCtx int) (*Session, error) {
	hp := m.HP
	if nCtx <= 0 {
		nCtx = hp.ContextLen
	}
	if nCtx <= 0 {
		return nil, fmt.Errorf("model: invalid context size %d", nCtx)
	}
	kvDim := hp.HeadsKV * hp.HeadDim
	s := &Session{m: m, nCtx: nCtx, batch: min(m.batch, nCtx)}
	s.k = make([][]uint16, hp.Layers)
	s.v = make([][]uint16, hp.Layers)
	for i := range s.k {
		s.k[i] = make([]uint16, nCtx*kvDim)
		s.v[i] = make([]uint16, nCtx*kvDim)
	}
	s.logits = make([]float32, hp.Vocab)
	return s, nil
}

// engine returns the session's own engine, making it on first use.
func (s *Session) engine() *engine {
	if s.eng == nil {
		s.eng = newEngine(s.m, s.batch, s.nCtx)
		s.eng.setKeep(s.keep)
		// Workers hold no reference to the Session, so an abandoned
		// Session is collected and its goroutines stopped even without
		// Close.
		runtime.AddCleanup(s, func(p *pool) { p.close() }, s.eng.pool)
	}
	return s.eng
}

// Close stops the session's worker goroutines. The session must not be used
// afterwards. Calling it is optional but frees the goroutines promptly.
func (s *Session) Close() {
	if s.eng != nil {
		s.eng.pool.close()
	}
}

// Model returns the model the session runs.
func (s *Session) Model() *Model { return s.m }

// Pos is the number of tokens in the KV cache.
func (s *Session) Pos() int { return s.pos }

// ContextSize is the capacity of the KV cache in tokens.
func (s *Session) ContextSize() int { return s.nCtx }

// Reset empties the KV cache; the next Eval starts at position 0.
func (s *Session) Reset() { s.pos = 0 }

// Truncate keeps the first n tokens of the cache and drops the rest, so that
// a common prefix (a shared prompt header) is evaluated once and reused: the
// next Eval continues at position n with results identical to evaluating
// the whole sequence afresh.
func (s *Session) Truncate(n int) error {
	if n < 0 || n > s.pos {
		return fmt.Errorf("model: cannot truncate %d cached tokens to %d", s.pos, n)
	}
	s.pos = n
	return nil
}

// KeepActivations makes every layer keep its own LayerActivations (for a
// backward pass) instead of sharing one set. It allocates on first use.
// It applies to the session's own Evals, not to Batcher steps.
func (s *Session) KeepActivations(keep bool) {
	s.keep = keep
	if s.eng != nil {
		s.eng.setKeep(keep)
	}
}

// Activations returns the activations of the last batch the session's own
// Eval processed: one entry per layer with KeepActivations(true), otherwise
// a single entry that holds the last layer's values. Valid until the next
// Eval.
func (s *Session) Activations() []LayerActivations {
	e := s.engine()
	if e.keep {
		return e.acts[:s.m.HP.Layers]
	}
	return e.acts[:1]
}

// checkTokens reports why tokens cannot be appended to the session.
func (s *Session) checkTokens(tokens []int32) error {
	if len(tokens) == 0 {
		return errors.New("model: Eval needs at least one token")
	}
	if s.pos+len(tokens) > s.nCtx {
		return fmt.Errorf("%w: %d tokens in cache + %d new > %d", ErrContextFull, s.pos, len(tokens), s.nCtx)
	}
	for _, t := range tokens {
		if t < 0 || int(t) >= s.m.HP.Vocab {
			return fmt.Errorf("model: token id %d out of range [0,%d)", t, s.m.HP.Vocab)
		}
	}
	return nil
}

// Eval appends tokens to the sequence and returns the logits that predict the
// token after the last one (len = vocabulary size). The tokens go through the
// layers in batches of up to Options.BatchSize. The returned slice belongs to
// the session and is overwritten by the next Eval.
func (s *Session) Eval(tokens []int32) ([]float32, error) {
	if err := s.checkTokens(tokens); err != nil {
		return nil, err
	}
	e := s.engine()
	for start := 0; start < len(tokens); start += s.batch {
		end := min(len(tokens), start+s.batch)
		e.one[0] = BatchItem{Session: s, Tokens: tokens[start:end]}
		err := e.forward(e.one[:], end == len(tokens))
		e.one[0] = BatchItem{}
		if err != nil {
			return nil, err
		}
	}
	return s.logits, nil
}

// engine is the forward pass: a worker pool and scratch for up to maxTokens
// rows per step. The rows of one step may belong to several sessions; every
// weight matrix is streamed once per step for all of them, while RoPE, the
// KV-cache writes and attention use each row's own session and position.
type engine struct {
	m         *Model
	maxTokens int
	pool      *pool

	embd []float32 // input of layer 0 [maxTokens][embd]
	acts []LayerActivations
	keep bool
	rows []seqRow // the step's rows: whose sequence, at which position

	// last holds the output-norm of each item's last row and logits their
	// logits when a step has more than one item; both grow to the largest
	// item count seen, so that a batch of one costs one vocabulary row.
	last   []float32
	logits []float32

	in     actInput
	mm     matmulJob
	rowOps rowOps
	pm     packedJob
	attn   attnJob
	ropeCS []float32 // cos then sin for one position [RopeDim]
	one    [1]BatchItem
}

// seqRow places one row of a step in its sequence.
type seqRow struct {
	s   *Session
	pos int
}

// newEngine allocates the scratch of maxTokens rows; nCtx sizes the
// attention scores and grows with the longest session seen.
func newEngine(m *Model, maxTokens, nCtx int) *engine {
	hp := m.HP
	e := &engine{m: m, maxTokens: maxTokens, pool: newPool(m.threads)}
	e.embd = make([]float32, maxTokens*hp.Embd)
	e.acts = []LayerActivations{newLayerActivations(hp, maxTokens)}
	e.rows = make([]seqRow, maxTokens)
	e.last = make([]float32, hp.Embd)
	maxCols := max(hp.Embd, hp.FF, hp.Heads*hp.HeadDim)
	e.in.init(maxTokens, maxCols)
	e.in.pool = e.pool
	e.attn.init(e, m.threads, nCtx)
	e.ropeCS = make([]float32, hp.RopeDim)
	return e
}

func (e *engine) setKeep(keep bool) {
	e.keep = keep
	for keep && len(e.acts) < e.m.HP.Layers {
		e.acts = append(e.acts, newLayerActivations(e.m.HP, e.maxTokens))
	}
}

// forward runs one step: every item's tokens (checked by the caller, at
// most maxTokens in all) go through the layers together, each at its
// session's positions, and the sessions advance. With wantLogits each
// item's session gets the logits of its last token.
func (e *engine) forward(items []BatchItem, wantLogits bool) error {
	m, hp := e.m, e.m.HP
	E := hp.Embd
	n := 0
	for _, it := range items {
		e.attn.fit(it.Session.nCtx)
		for t, id := range it.Tokens {
			// Token embeddings: rows of token_embd dequantised, as
			// ggml_get_rows does.
			if err := quant.Dequantize(m.TokenEmbd.Type, m.TokenEmbd.Row(int(id)), e.embd[n*E:(n+1)*E]); err != nil {
				clear(e.rows[:n])
				return fmt.Errorf("model: embedding of token %d: %w", id, err)
			}
			e.rows[n] = seqRow{s: it.Session, pos: it.Session.pos + t}
			n++
		}
	}
	x := e.embd
	for il := range m.Layers {
		a := &e.acts[0]
		if e.keep {
			a = &e.acts[il]
		}
		a.NTokens = n
		e.layer(il, x, a, n)
		x = a.Out
	}
	// The rows must not keep sessions alive past the step.
	clear(e.rows[:n])
	for _, it := range items {
		it.Session.pos += len(it.Tokens)
	}
	if !wantLogits {
		return nil
	}
	k, V := len(items), hp.Vocab
	if len(e.last) < k*E {
		e.last = make([]float32, k*E)
	}
	end := 0
	for i, it := range items {
		end += len(it.Tokens)
		rmsNorm(e.last[i*E:(i+1)*E], x[(end-1)*E:end*E], m.OutputNorm, hp.RMSEps)
	}
	e.in.set(e.last[:k*E], k, E)
	if k == 1 {
		e.matmul(items[0].Session.logits, m.Output)
		return nil
	}
	if len(e.logits) < k*V {
		e.logits = make([]float32, k*V)
	}
	e.matmul(e.logits[:k*V], m.Output)
	for i, it := range items {
		copy(it.Session.logits, e.logits[i*V:(i+1)*V])
	}
	return nil
}

// layer runs transformer block il on the n input rows x (the previous
// block's output) and leaves everything in a. x may alias a.Out.
func (e *engine) layer(il int, x []float32, a *LayerActivations, n int) {
	m, hp := e.m, e.m.HP
	L := &m.Layers[il]
	E := hp.Embd
	qDim, kvDim := hp.Heads*hp.HeadDim, hp.HeadsKV*hp.HeadDim

	// Attention block.
	e.rows2(n, rowOps{op: opAttnNorm, a: a, x: x, norm: L.AttnNorm})
	e.in.set(a.AttnNorm, n, E)
	e.matmul(a.Q[:n*qDim], L.Wq)
	e.matmul(a.K[:n*kvDim], L.Wk)
	e.matmul(a.V[:n*kvDim], L.Wv)
	addBias(a.Q[:n*qDim], L.Bq)
	addBias(a.K[:n*kvDim], L.Bk)
	addBias(a.V[:n*kvDim], L.Bv)

	thetaScale := float32(math.Pow(float64(hp.RopeBase), float64(float32(-2)/float32(hp.RopeDim))))
	half := hp.RopeDim / 2
	cos, sin := e.ropeCS[:half], e.ropeCS[half:]
	for t := 0; t < n; t++ {
		row := e.rows[t]
		ropeCache(cos, sin, row.pos, thetaScale, hp.RopeScale, m.RopeFreqs)
		for h := 0; h < hp.Heads; h++ {
			rope(a.Q[t*qDim+h*hp.HeadDim:], cos, sin, hp.RopeStyle)
		}
		for h := 0; h < hp.HeadsKV; h++ {
			rope(a.K[t*kvDim+h*hp.HeadDim:], cos, sin, hp.RopeStyle)
		}
		// Store K and V rounded to F16 before attending: the batch's own
		// tokens are read back from the cache like earlier ones.
		kc := row.s.k[il][row.pos*kvDim : (row.pos+1)*kvDim]
		vc := row.s.v[il][row.pos*kvDim : (row.pos+1)*kvDim]
		quant.FP32ToFP16Row(kc, a.K[t*kvDim:(t+1)*kvDim])
		quant.FP32ToFP16Row(vc, a.V[t*kvDim:(t+1)*kvDim])
	}
	e.attend(il, a, n)

	e.in.set(a.Attn, n, qDim)
	e.matmul(a.AttnOut[:n*E], L.Wo)
	addBias(a.AttnOut[:n*E], L.Bo)
	for i := range n * E {
		a.FFNIn[i] = x[i] + a.AttnOut[i]
	}

	// Feed-forward block (SwiGLU).
	e.rows2(n, rowOps{op: opFFNNorm, a: a, norm: L.FFNNorm})
	F := hp.FF
	e.in.set(a.FFNNorm, n, E)
	e.matmul(a.Gate[:n*F], L.Gate)
	e.matmul(a.Up[:n*F], L.Up)
	e.rows2(n, rowOps{op: opSwiGLU, a: a})
	e.in.set(a.Act, n, F)
	e.matmul(a.FFNOut[:n*E], L.Down)
	for i := range n * E {
		a.Out[i] = a.FFNIn[i] + a.FFNOut[i]
	}
}

// rowOps are the per-token steps of a layer worth splitting over the
// workers when a step has several tokens (a prompt, a batch).
type rowOps struct {
	e    *engine
	op   int
	a    *LayerActivations
	x    []float32
	norm []float32
}

const (
	opAttnNorm = iota // AttnNorm = rmsnorm(x) * norm
	opFFNNorm         // FFNNorm = rmsnorm(FFNIn) * norm
	opSwiGLU          // Act = silu(Gate) * Up
)

func (j *rowOps) run(_, lo, hi int) {
	hp := j.e.m.HP
	E, F, a := hp.Embd, hp.FF, j.a
	for t := lo; t < hi; t++ {
		switch j.op {
		case opAttnNorm:
			rmsNorm(a.AttnNorm[t*E:(t+1)*E], j.x[t*E:(t+1)*E], j.norm, hp.RMSEps)
		case opFFNNorm:
			rmsNorm(a.FFNNorm[t*E:(t+1)*E], a.FFNIn[t*E:(t+1)*E], j.norm, hp.RMSEps)
		case opSwiGLU:
			swiGLU(a.Act[t*F:(t+1)*F], a.Gate[t*F:(t+1)*F], a.Up[t*F:(t+1)*F])
		}
	}
}

// rows2 runs job over n token rows, split over the pool two rows or more
// at a time.
func (e *engine) rows2(n int, job rowOps) {
	job.e = e
	e.rowOps = job // a field, so that passing it to the pool allocates nothing
	e.pool.parallel(n, 2, &e.rowOps)
	e.rowOps = rowOps{}
}

// addBias adds a bias row to every row of x; b nil means no bias.
func addBias(x, b []float32) {
	if b == nil {
		return
	}
	for i := range x {
		x[i] += b[i%len(b)]
	}
}

// actInput is the input of a batch of matrix products: n rows of float32
// activations and, per vec-dot type, the same rows quantised the way ggml
// converts src1 before its dot products (Q8_0 for Q4_0/Q8_0 weights, Q8_K for
// K-quants, F16 for F16, BF16 for BF16). Each conversion happens once per input, however
// many weights read it.
type actInput struct {
	x      []float32
	n, dim int
	convs  []actConv

	// auxes hold the rows expanded for packed weights, one per kind of
	// expansion (quant.Packing.AuxName) the model's matrices read.
	auxes []actAux
	// batch and maxCols (rounded up to whole K-quant blocks) bound the rows.
	batch, maxCols int

	// Conversions of several rows are split over the engine's workers
	// (nil pool: the caller converts alone).
	pool *pool
	conv convJob
}

// actAux is one expansion of the input rows for packed weights.
type actAux struct {
	p     *quant.Packing
	buf   []byte
	valid bool
}

// convJob converts rows [lo, hi) of an actInput to a conversion's type, or
// expands the converted rows for packed kernels (aux).
type convJob struct {
	in  *actInput
	c   *actConv
	aux *actAux
}

func (j *convJob) run(_, lo, hi int) {
	in, c := j.in, j.c
	if a := j.aux; a != nil {
		as := a.p.AuxBytes(in.dim)
		for r := lo; r < hi; r++ {
			a.p.Aux(c.buf[r*c.stride:(r+1)*c.stride], in.dim, a.buf[r*as:(r+1)*as])
		}
		return
	}
	for r := lo; r < hi; r++ {
		quant.QuantizeRow(c.typ, in.x[r*in.dim:(r+1)*in.dim], c.buf[r*c.stride:(r+1)*c.stride])
	}
}

// convert runs j over the rows, on the pool when there is one.
func (in *actInput) convert(c *actConv, aux *actAux) {
	in.conv = convJob{in: in, c: c, aux: aux}
	if in.pool == nil {
		in.conv.run(0, 0, in.n)
	} else {
		in.pool.parallel(in.n, 2, &in.conv)
	}
	in.conv = convJob{}
}

type actConv struct {
	typ    quant.Type
	buf    []byte
	stride int
	valid  bool
}

func (in *actInput) init(batch, maxCols int) {
	in.batch, in.maxCols = batch, (maxCols+quant.QKK-1)/quant.QKK*quant.QKK
	for _, t := range []quant.Type{quant.F32, quant.F16, quant.BF16, quant.Q8_0, quant.Q8_K} {
		// Row sizes of the padded width bound every real row (a K-quant
		// row must be a multiple of 256 anyway).
		rb, err := quant.RowBytes(t, in.maxCols)
		if err != nil {
			continue
		}
		in.convs = append(in.convs, actConv{typ: t, buf: make([]byte, batch*rb)})
	}
}

func (in *actInput) set(x []float32, n, dim int) {
	in.x, in.n, in.dim = x, n, dim
	for i := range in.convs {
		in.convs[i].valid = false
	}
	for i := range in.auxes {
		in.auxes[i].valid = false
	}
}

// aux returns the rows expanded for packing p, and the stride of a row.
func (in *actInput) aux(p *quant.Packing) (aux []byte, auxStride int) {
	t := quant.VecDotType(p.Type)
	if _, _, err := in.as(t); err != nil {
		panic(err) // Load accepts only types whose vec-dot type init sets up
	}
	var a *actAux
	for i := range in.auxes {
		if in.auxes[i].p.AuxName == p.AuxName {
			a = &in.auxes[i]
		}
	}
	if a == nil {
		// Allocated on first use, for the widest row: several times the
		// size of the converted rows, and only packed matrices read it.
		in.auxes = append(in.auxes, actAux{p: p, buf: make([]byte, in.batch*p.AuxBytes(in.maxCols))})
		a = &in.auxes[len(in.auxes)-1]
	}
	if !a.valid {
		for i := range in.convs {
			if in.convs[i].typ == t {
				in.convert(&in.convs[i], a)
			}
		}
		a.valid = true
	}
	return a.buf, p.AuxBytes(in.dim)
}

// as returns the input rows converted to type t, converting on first use.
func (in *actInput) as(t quant.Type) ([]byte, int, error) {
	for i := range in.convs {
		c := &in.convs[i]
		if c.typ != t {
			continue
		}
		if !c.valid {
			rb, err := quant.RowBytes(t, in.dim)
			if err != nil {
				return nil, 0, err
			}
			c.stride = rb
			in.convert(c, nil)
			c.valid = true
		}
		return c.buf, c.stride, nil
	}
	return nil, 0, fmt.Errorf("model: no activation conversion to %s", t)
}

// matmul computes out[t][r] = W[r]·x[t] for the current input rows, split
// over the pool by weight rows so every worker streams its own slice of W
// once for the whole batch.
func (e *engine) matmul(out []float32, w *Weight) {
	if w.packed != nil {
		aux, auxStride := e.in.aux(w.packing)
		e.pm = packedJob{w: w, aux: aux, auxStride: auxStride, n: e.in.n, out: out}
		e.pool.parallel(w.Rows/8, 2, &e.pm)
		return
	}
	xq, stride, err := e.in.as(quant.VecDotType(w.Type))
	if err != nil {
		// Load accepts only types whose vec-dot type is converted above.
		panic(err)
	}
	e.mm = matmulJob{w: w, xq: xq, stride: stride, n: e.in.n, out: out}
	e.pool.parallel(w.Rows, 16, &e.mm)
}

type matmulJob struct {
	w      *Weight
	xq     []byte
	stride int
	n      int
	out    []float32
}

// packedJob is matmulJob for a packed matrix, split over groups of 8 rows.
type packedJob struct {
	w         *Weight
	aux       []byte
	auxStride int
	n         int
	out       []float32
}

// packedTileBytes bounds the packed weights one Packing.Dot call covers:
// the kernels pass over them once per 4 tokens, so they should stay in L2
// next to four tokens' expanded activations while the step's tokens go by.
const packedTileBytes = 96 << 10

func (j *packedJob) run(_, lo, hi int) {
	w := j.w
	gb := len(w.packed) / (w.Rows / 8)
	tile := max(1, packedTileBytes/gb)
	for g0 := lo; g0 < hi; g0 += tile {
		g1 := min(g0+tile, hi)
		w.packing.Dot(w.Cols, w.packed[g0*gb:g1*gb], j.aux, j.auxStride, j.n, j.out[8*g0:], w.Rows)
	}
}

// floatMatmulTile is how many rows of a float matrix one VecDotTile call
// covers: those have no tile kernel, so VecDotTile goes token by token, and
// few rows stay in cache while every token passes over them. Quantised
// types get the worker's whole range in one call: their tile kernels walk
// it 8 rows at a time with the tokens inside, and prepare each token's
// activations once per call.
const floatMatmulTile = 16

func (j *matmulJob) run(_, lo, hi int) {
	w := j.w
	tile := hi - lo
	switch w.Type {
	case quant.F32, quant.F16, quant.BF16:
		tile = floatMatmulTile
	}
	for r0 := lo; r0 < hi; r0 += tile {
		r1 := min(r0+tile, hi)
		quant.VecDotTile(w.Type, w.Cols, w.Data[r0*w.RowBytes:r1*w.RowBytes], j.xq, j.stride, j.n, j.out[r0:], w.Rows)
	}
}

// f16to32 converts through a table, as ggml does: the attention inner loops
// convert every cached element. An array indexed by uint16 needs no bounds
// check.
func f16to32(h uint16) float32 { return f16Table[h] }

var f16Table = func() *[1 << 16]float32 {
	t := new([1 << 16]float32)
	for i := range t {
		t[i] = quant.FP16ToFP32(uint16(i))
	}
	return t
}()
