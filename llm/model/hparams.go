package model

import (
	"fmt"
	"math"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
)

// HParams are a model's hyper-parameters, read from the GGUF metadata keys
// "<arch>.*" the way llama.cpp reads them.
type HParams struct {
	Arch        string // general.architecture: "llama" or "qwen2"
	ContextLen  int    // context_length: the training context
	Embd        int    // embedding_length
	Layers      int    // block_count
	FF          int    // feed_forward_length
	Heads       int    // attention.head_count
	HeadsKV     int    // attention.head_count_kv (defaults to Heads)
	HeadDim     int    // attention.key_length, else Embd/Heads
	Vocab       int    // rows of token_embd.weight
	RMSEps      float32
	RopeDim     int     // rope.dimension_count, else HeadDim
	RopeBase    float32 // rope.freq_base, default 10000
	RopeScale   float32 // linear RoPE scaling: angles are multiplied by 1/factor
	RopeStyle   int     // ropeNorm (llama) or ropeNeox (qwen2)
	TiedOutput  bool    // no output.weight: the output projection is token_embd
	AttnBiasQKV bool    // q/k/v projections carry biases (qwen2)
}

// archRope maps the supported architectures to their RoPE layout.
var archRope = map[string]int{
	"llama": ropeNorm,
	"qwen2": ropeNeox,
}

func readHParams(f *gguf.File) (HParams, error) {
	var hp HParams
	arch, ok := f.String("general.architecture")
	if !ok {
		return hp, fmt.Errorf("missing general.architecture")
	}
	style, ok := archRope[arch]
	if !ok {
		return hp, fmt.Errorf("unsupported architecture %q (supported: llama, qwen2)", arch)
	}
	hp.Arch, hp.RopeStyle = arch, style

	geti := func(key string, required bool, def int) (int, error) {
		full := arch + "." + key
		v, ok := f.Uint(full)
		if !ok {
			if required {
				return 0, fmt.Errorf("missing %s", full)
			}
			return def, nil
		}
		if v > math.MaxInt32 {
			return 0, fmt.Errorf("%s = %d is out of range", full, v)
		}
		return int(v), nil
	}
	getf := func(key string, def float32) float32 {
		if v, ok := f.Float(arch + "." + key); ok {
			return float32(v)
		}
		return def
	}
	var err error
	if hp.ContextLen, err = geti("context_length", false, 2048); err != nil {
		return hp, err
	}
	if hp.Embd, err = geti("embedding_length", true, 0); err != nil {
		return hp, err
	}
	if hp.Layers, err = geti("block_count", true, 0); err != nil {
		return hp, err
	}
	if hp.FF, err = geti("feed_forward_length", true, 0); err != nil {
		return hp, err
	}
	if hp.Heads, err = geti("attention.head_count", true, 0); err != nil {
		return hp, err
	}
	if hp.HeadsKV, err = geti("attention.head_count_kv", false, hp.Heads); err != nil {
		return hp, err
	}
	if hp.Embd <= 0 || hp.Layers <= 0 || hp.FF <= 0 || hp.Heads <= 0 || hp.HeadsKV <= 0 {
		return hp, fmt.Errorf("non-positive dimension in metadata: %+v", hp)
	}
	if hp.Heads%hp.HeadsKV != 0 {
		return hp, fmt.Errorf("head_count %d is not a multiple of head_count_kv %d", hp.Heads, hp.HeadsKV)
	}
	def := 0
	if hp.Embd%hp.Heads == 0 {
		def = hp.Embd / hp.Heads
	}
	if hp.HeadDim, err = geti("attention.key_length", false, def); err != nil {
		return hp, err
	}
	vdim, err := geti("attention.value_length", false, hp.HeadDim)
	if err != nil {
		return hp, err
	}
	if hp.HeadDim <= 0 || vdim != hp.HeadDim {
		return hp, fmt.Errorf("unsupported head dimensions: key %d, value %d", hp.HeadDim, vdim)
	}
	if hp.RopeDim, err = geti("rope.dimension_count", false, hp.HeadDim); err != nil {
		return hp, err
	}
	if hp.RopeDim <= 0 || hp.RopeDim > hp.HeadDim || hp.RopeDim%2 != 0 {
		return hp, fmt.Errorf("rope.dimension_count %d does not fit head dimension %d", hp.RopeDim, hp.HeadDim)
	}
	hp.RMSEps = getf("attention.layer_norm_rms_epsilon", 1e-5)
	hp.RopeBase = getf("rope.freq_base", 10000)

	// RoPE scaling: llama.cpp reads rope.scaling.factor, falling back to the
	// older rope.scale_linear, and turns it into freq_scale = 1/factor.
	// Linear interpolation is all this engine implements; YaRN and LongRoPE
	// change the angles and the magnitudes and are refused rather than run
	// with the wrong numbers.
	hp.RopeScale = 1
	typ, _ := f.String(arch + ".rope.scaling.type")
	factor := getf("rope.scaling.factor", 0)
	if factor == 0 {
		factor = getf("rope.scale_linear", 0)
	}
	switch typ {
	case "", "none", "linear":
		if typ != "none" && factor != 0 && factor != 1 {
			hp.RopeScale = 1 / factor
		}
	default:
		return hp, fmt.Errorf("unsupported rope scaling type %q (only linear is implemented)", typ)
	}
	return hp, nil
}
