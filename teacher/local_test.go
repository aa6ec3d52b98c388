package teacher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var sharedModels = filepath.Join("..", "..", "shared", "models")

func requireModel(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(sharedModels, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference model %s not available (the shared reference data is not checked out next to the repo): %v", p, err)
	}
	return p
}

func newTestLocal(t testing.TB, cfg LocalConfig) (*Local, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if cfg.Threads == 0 {
		cfg.Threads = 2
	}
	l, err := NewLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, logs
}

func seed(n int64) *int64 { return &n }

// stories260KReference reads llama.cpp's greedy continuation of "Once upon
// a time" for one stories260K file: the full text and the number of ids.
func stories260KReference(t *testing.T, file string) (text string, n int) {
	t.Helper()
	raw, err := os.ReadFile(requireModel(t, filepath.Join("expected", "llamacpp_stories260K.txt")))
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
	i := strings.Index(body, "======== "+file+" ")
	if i < 0 {
		t.Fatalf("no section for %s in the expected output", file)
	}
	body = body[i+1:]
	if j := strings.Index(body, "\n========"); j >= 0 {
		body = body[:j]
	}
	ids := regexp.MustCompile(`(?m)^ids: \[(.*)\]$`).FindStringSubmatch(body)
	txt := regexp.MustCompile(`(?m)^text: (".*")$`).FindStringSubmatch(body)
	if ids == nil || txt == nil {
		t.Fatalf("%s: incomplete expected section", file)
	}
	if err := json.Unmarshal([]byte(txt[1]), &text); err != nil {
		t.Fatal(err)
	}
	return text, strings.Count(ids[1], ",") + 1
}

// TestLocalMatchesLlamaCppStories: the greedy continuation through the
// teacher is llama.cpp's, with real token counts (BOS included).
func TestLocalMatchesLlamaCppStories(t *testing.T) {
	for _, file := range []string{"stories260K.gguf", "stories260K-Q8_0.gguf"} {
		t.Run(file, func(t *testing.T) {
			want, n := stories260KReference(t, file)
			l, _ := newTestLocal(t, LocalConfig{Model: requireModel(t, file)})
			resp, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"Once upon a time"}, MaxTokens: n})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Choices) != 1 {
				t.Fatalf("%d choices", len(resp.Choices))
			}
			if got := "Once upon a time" + resp.Choices[0].Text; got != want {
				t.Errorf("text\n %q\nwant\n %q", got, want)
			}
			if resp.Choices[0].FinishReason != FinishLength {
				t.Errorf("finish %q, want length", resp.Choices[0].FinishReason)
			}
			if resp.Usage != (Usage{PromptTokens: 5, CompletionTokens: int64(n)}) {
				t.Errorf("usage %+v, want 5 prompt tokens (BOS + 4) and %d completion tokens", resp.Usage, n)
			}
			if resp.Model != file || l.Model() != file {
				t.Errorf("model %q / %q, want the file name", resp.Model, l.Model())
			}
		})
	}
}

// TestLocalMatchesLlamaCppRandom runs the random-weight qwen2 (byte-level
// BPE, no BOS) and llama (SentencePiece, BOS) reference cases.
func TestLocalMatchesLlamaCppRandom(t *testing.T) {
	for _, name := range []string{"qwen2-small-q8_0", "llama-spm-small-q4_k_m"} {
		path := requireModel(t, filepath.Join("random", name+".gguf"))
		raw, err := os.ReadFile(filepath.Join(sharedModels, "random", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Cases []struct {
				Name         string  `json:"name"`
				Prompt       string  `json:"prompt"`
				PromptIDs    []int32 `json:"prompt_ids"`
				GeneratedIDs []int32 `json:"generated_ids"`
				Text         string  `json:"text"`
			} `json:"cases"`
		}
		if err := json.Unmarshal(raw, &ref); err != nil {
			t.Fatal(err)
		}
		l, _ := newTestLocal(t, LocalConfig{Model: path, CtxSize: 256})
		for _, c := range ref.Cases {
			t.Run(name+"/"+c.Name, func(t *testing.T) {
				resp, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{c.Prompt}, MaxTokens: len(c.GeneratedIDs)})
				if err != nil {
					t.Fatal(err)
				}
				// The reference shows invalid UTF-8 as U+FFFD, as a JSON
				// encoder does.
				b, _ := json.Marshal(resp.Choices[0].Text)
				var got string
				json.Unmarshal(b, &got)
				if got != c.Text {
					t.Errorf("text\n %q\nwant\n %q", got, c.Text)
				}
				want := Usage{PromptTokens: int64(len(c.PromptIDs)), CompletionTokens: int64(len(c.GeneratedIDs))}
				if resp.Usage != want {
					t.Errorf("usage %+v, want %+v", resp.Usage, want)
				}
			})
		}
	}
}

func TestLocalStopStrings(t *testing.T) {
	l, _ := newTestLocal(t, LocalConfig{Model: requireModel(t, "stories260K.gguf")})
	full, _ := stories260KReference(t, "stories260K.gguf")
	full = strings.TrimPrefix(full, "Once upon a time")
	cases := []struct {
		stop       []string
		wantText   string
		wantFinish string
	}{
		// " Lily" is one token; "gir" spans " g" + "ir".
		{[]string{" Lily"}, ", there was a little girl named", FinishStop},
		{[]string{"gir"}, ", there was a little ", FinishStop},
		// The earliest of several wins, whatever their order.
		{[]string{"ball", "park", "named"}, ", there was a little girl ", FinishStop},
		{[]string{"no such text", ""}, full, FinishLength},
	}
	for _, c := range cases {
		resp, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"Once upon a time"}, MaxTokens: 64, Stop: c.stop})
		if err != nil {
			t.Fatal(err)
		}
		ch := resp.Choices[0]
		if ch.Text != c.wantText || ch.FinishReason != c.wantFinish {
			t.Errorf("stop %q: %q (%s), want %q (%s)", c.stop, ch.Text, ch.FinishReason, c.wantText, c.wantFinish)
		}
	}
}

// TestLocalEndOfGeneration: an end-of-generation token ends the choice as
// "stop", is counted, and leaves no text. stories260K writes </s> neither
// greedily nor at ordinary temperatures, but at a very high one it draws it
// for some seeds; without MaxTokens the others fill the context.
func TestLocalEndOfGeneration(t *testing.T) {
	l, _ := newTestLocal(t, LocalConfig{Model: requireModel(t, "stories260K.gguf"), CtxSize: 512})
	ended := 0
	for s := range 4 {
		resp, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"Once upon a time"}, Temperature: 8, Seed: seed(int64(s))})
		if err != nil {
			t.Fatal(err)
		}
		ch, n := resp.Choices[0], resp.Usage.CompletionTokens
		switch ch.FinishReason {
		case FinishStop:
			ended++
			if n >= 512-5 {
				t.Errorf("seed %d: stop after %d tokens, the whole context", s, n)
			}
		case FinishLength:
			if n != 512-5 {
				t.Errorf("seed %d: length after %d tokens, want the context's 507", s, n)
			}
		default:
			t.Errorf("seed %d: finish %q", s, ch.FinishReason)
		}
		if strings.Contains(ch.Text, "</s>") {
			t.Errorf("seed %d: the end token's text is in the choice", s)
		}
	}
	if ended == 0 {
		t.Error("no seed ended at </s>")
	}
}

func TestLocalContextLimits(t *testing.T) {
	l, _ := newTestLocal(t, LocalConfig{Model: requireModel(t, "stories260K.gguf"), CtxSize: 16})
	full, _ := stories260KReference(t, "stories260K.gguf")
	resp, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"Once upon a time"}, MaxTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	// 5 prompt tokens leave 11 in a context of 16.
	if resp.Usage.CompletionTokens != 11 || resp.Choices[0].FinishReason != FinishLength || !strings.HasPrefix(full, "Once upon a time"+resp.Choices[0].Text) {
		t.Errorf("usage %+v finish %s text %q", resp.Usage, resp.Choices[0].FinishReason, resp.Choices[0].Text)
	}

	small, _ := newTestLocal(t, LocalConfig{Model: requireModel(t, "stories260K.gguf"), CtxSize: 5})
	_, err = small.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"Once upon a time"}, MaxTokens: 10})
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "5 tokens") || !strings.Contains(err.Error(), "context of 5") {
		t.Errorf("prompt longer than the context: %v", err)
	}
}

// TestLocalChatWithoutTemplate: a model without a chat template gets the
// messages' contents as one raw prompt, and says so once.
func TestLocalChatWithoutTemplate(t *testing.T) {
	l, logs := newTestLocal(t, LocalConfig{Model: requireModel(t, "stories260K.gguf")})
	msgs := []Message{{Role: "system", Content: "Once upon"}, {Role: "user", Content: "a time"}}
	chat, err := l.Complete(context.Background(), Request{Mode: ModeChat, Messages: msgs, MaxTokens: 20})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"Once upon\na time"}, MaxTokens: 20})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0] != raw.Choices[0] || chat.Usage != raw.Usage {
		t.Errorf("chat %+v %+v, raw %+v %+v", chat.Choices[0], chat.Usage, raw.Choices[0], raw.Usage)
	}
	l.Complete(context.Background(), Request{Mode: ModeChat, Messages: msgs, MaxTokens: 2})
	if n := strings.Count(logs.String(), "no chat template"); n != 1 {
		t.Errorf("the raw-prompt notice was logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestLocalChatTemplate: with a template the special-token texts become
// single tokens and no BOS is added for a vocabulary that has none to add.
func TestLocalChatTemplate(t *testing.T) {
	path := requireModel(t, filepath.Join("random", "qwen2-small-q8_0.gguf"))
	l, _ := newTestLocal(t, LocalConfig{Model: path, Template: "chatml", CtxSize: 256})
	msg := "Name a color."
	chat, err := l.Complete(context.Background(), Request{Mode: ModeChat, Messages: []Message{{Role: "user", Content: msg}}, MaxTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	// The same text as a raw prompt keeps "<|im_start|>" as characters: it
	// must take many more tokens than the parsed rendering.
	rendered := "<|im_start|>user\n" + msg + "<|im_end|>\n<|im_start|>assistant\n"
	raw, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{rendered}, MaxTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	msgTokens := int64(len(l.tok.Encode(msg, false, false)))
	// <|im_start|> user \n MSG <|im_end|> \n <|im_start|> assistant \n
	if want := msgTokens + 8; chat.Usage.PromptTokens != want {
		t.Errorf("chat prompt of %d tokens, want %d (special tokens parsed, no BOS)", chat.Usage.PromptTokens, want)
	}
	if raw.Usage.PromptTokens <= chat.Usage.PromptTokens+6 {
		t.Errorf("raw prompt of %d tokens vs chat %d: special texts parsed in a raw prompt", raw.Usage.PromptTokens, chat.Usage.PromptTokens)
	}

	if _, err := NewLocal(LocalConfig{Model: path, Template: "nope", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err == nil || !strings.Contains(err.Error(), "chatml") {
		t.Errorf("unknown template name: %v", err)
	}
}

func TestLocalBadRequests(t *testing.T) {
	l, _ := newTestLocal(t, LocalConfig{Model: requireModel(t, "stories260K.gguf")})
	for _, req := range []Request{
		{Mode: ModeChat},
		{Mode: ModeCompletion},
		{Mode: "edits", Prompts: []string{"x"}},
	} {
		if _, err := l.Complete(context.Background(), req); !errors.Is(err, ErrRejected) {
			t.Errorf("%+v: %v, want ErrRejected", req, err)
		}
	}
	if _, err := NewLocal(LocalConfig{Model: filepath.Join(t.TempDir(), "missing.gguf")}); err == nil || !strings.Contains(err.Error(), "missing.gguf") {
		t.Errorf("missing file: %v", err)
	}
	notGGUF := filepath.Join(t.TempDir(), "x.gguf")
	os.WriteFile(notGGUF, []byte("not a gguf file at all"), 0o644)
	if _, err := NewLocal(LocalConfig{Model: notGGUF}); err == nil || !strings.Contains(err.Error(), "x.gguf") {
		t.Errorf("not a GGUF: %v", err)
	}
}

// TestLocalConcurrentEqualsSequential: sampled and greedy requests, with and
// without penalties, several prompts per request, give the same choices
// whether run one by one on a single (prefix-reusing) session or all at
// once on a pool of three.
func TestLocalConcurrentEqualsSequential(t *testing.T) {
	path := requireModel(t, "stories260K.gguf")
	var reqs []Request
	for i := range 8 {
		r := Request{Mode: ModeCompletion, MaxTokens: 24 + i, Seed: seed(int64(i))}
		r.Prompts = []string{"Once upon a time", "Once upon a time there was a dog"}
		switch i % 4 {
		case 1:
			r.Temperature, r.TopP = 0.9, 0.95
		case 2:
			r.Temperature, r.PresencePenalty, r.FrequencyPenalty = 1, 0.5, 0.3
		case 3:
			r.Mode, r.Prompts = ModeChat, nil
			r.Messages = []Message{{Role: "user", Content: "Once upon a time there was a cat"}}
			r.PresencePenalty = 1
		}
		reqs = append(reqs, r)
	}
	seq, _ := newTestLocal(t, LocalConfig{Model: path, Parallel: 1})
	var want []Response
	for _, r := range reqs {
		resp, err := seq.Complete(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, resp)
	}
	// Temperature 0.9 must actually sample: a greedy-only engine would
	// pass the comparison below vacuously.
	greedy := reqs[1]
	greedy.Temperature = 0
	g, err := seq.Complete(context.Background(), greedy)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(g.Choices) == fmt.Sprint(want[1].Choices) {
		t.Error("a sampled request gives the greedy text")
	}

	par, _ := newTestLocal(t, LocalConfig{Model: path, Parallel: 3, Threads: 1})
	got := make([]Response, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for round := range 2 { // the second round reuses the sessions' caches
		for i, r := range reqs {
			wg.Go(func() { got[i], errs[i] = par.Complete(context.Background(), r) })
		}
		wg.Wait()
		for i := range reqs {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
				t.Errorf("round %d request %d:\n concurrent %+v\n sequential %+v", round, i, got[i], want[i])
			}
		}
	}
	if n := par.sessionsMade.Load(); n > 3 {
		t.Errorf("%d sessions made, want at most Parallel=3", n)
	}
}

func TestLocalCancel(t *testing.T) {
	l, _ := newTestLocal(t, LocalConfig{Model: requireModel(t, filepath.Join("random", "llama-spm-small-q4_k_m.gguf")), CtxSize: 4096, Threads: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := l.Complete(ctx, Request{Mode: ModeCompletion, Prompts: []string{"The old lighthouse"}, MaxTokens: 4000})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancellation took %v; it must stop between tokens", d)
	}
	// The session is usable afterwards, with a clean cache.
	a, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"The old lighthouse"}, MaxTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := newTestLocal(t, LocalConfig{Model: l.cfg.Model, CtxSize: 64})
	b, err := fresh.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"The old lighthouse"}, MaxTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a.Choices, a.Usage) != fmt.Sprint(b.Choices, b.Usage) {
		t.Errorf("after a cancelled request %+v, fresh %+v", a, b)
	}

	// Waiting for a slot also ends with the context: one slot, held by a
	// long generation.
	busy, _ := newTestLocal(t, LocalConfig{Model: l.cfg.Model, Threads: 1})
	holdCtx, release := context.WithCancel(context.Background())
	held := make(chan error, 1)
	go func() {
		_, err := busy.Complete(holdCtx, Request{Mode: ModeCompletion, Prompts: []string{"The old lighthouse"}, MaxTokens: 4000})
		held <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := busy.Complete(ctx2, Request{Mode: ModeCompletion, Prompts: []string{"x"}, MaxTokens: 2}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a slot: %v", err)
	}
	release()
	if err := <-held; !errors.Is(err, context.Canceled) {
		t.Errorf("the long generation: %v, want cancelled", err)
	}
}

func TestFindStop(t *testing.T) {
	stops := [][]byte{[]byte("abc"), []byte("x")}
	cases := []struct {
		text string
		from int
		want int
	}{
		{"zzabc", 4, 2}, // completed by the last byte
		{"zzab", 3, -1},
		{"abczz", 4, -1}, // ended before from: already reported
		{"qxabc", 2, 2},  // "x" ended before from
		{"abx", 2, 2},
		{"", 0, -1},
	}
	for _, c := range cases {
		if got := findStop([]byte(c.text), c.from, stops); got != c.want {
			t.Errorf("findStop(%q, %d) = %d, want %d", c.text, c.from, got, c.want)
		}
	}
}

// TestLocalNoAllocationPerToken: the pooled session, the decoded pieces and
// the sampler make a longer generation cost no more allocations.
func TestLocalNoAllocationPerToken(t *testing.T) {
	l, _ := newTestLocal(t, LocalConfig{Model: requireModel(t, "stories260K.gguf"), Threads: 1})
	allocs := func(n int, temp float64) float64 {
		return testing.AllocsPerRun(3, func() {
			l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"Once upon a time"}, MaxTokens: n,
				Temperature: temp, PresencePenalty: 0.1, Stop: []string{"zzz"}, Seed: seed(1)})
		})
	}
	for _, temp := range []float64{0, 1} {
		short, long := allocs(20, temp), allocs(220, temp)
		if perToken := (long - short) / 200; perToken > 0.05 {
			t.Errorf("temperature %v: %.0f allocations for 20 tokens, %.0f for 220: %.2f per token", temp, short, long, perToken)
		}
	}
}
