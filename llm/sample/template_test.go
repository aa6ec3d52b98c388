package sample

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
)

var conversation = []Message{
	{"system", "You are terse."},
	{"user", "Hi there "},
	{"assistant", " Hello."},
	{"user", "Name a colour."},
}

// The expected strings below were worked out by hand from each family's
// published Jinja template, rendered with Hugging Face's settings.
func TestTemplatesRenderLikeTheirJinja(t *testing.T) {
	cases := []struct {
		name string
		msgs []Message
		gen  bool
		want string
	}{
		{"chatml", conversation, true,
			"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there <|im_end|>\n" +
				"<|im_start|>assistant\n Hello.<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"},
		{"chatml", conversation[1:2], false, "<|im_start|>user\nHi there <|im_end|>\n"},
		{"llama3", conversation, true,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"llama2", conversation, true,
			"<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello. </s><s>[INST] Name a colour. [/INST]"},
		{"llama2", conversation[1:2], true, "<s>[INST] Hi there [/INST]"},
		{"mistral", conversation[1:], true, "<s>[INST] Hi there  [/INST] Hello.</s>[INST] Name a colour. [/INST]"},
		{"zephyr", conversation, true,
			"<|system|>\nYou are terse.</s>\n<|user|>\nHi there </s>\n<|assistant|>\n Hello.</s>\n<|user|>\nName a colour.</s>\n<|assistant|>\n"},
		{"zephyr", conversation[:2], false, "<|system|>\nYou are terse.</s>\n<|user|>\nHi there </s>\n"},
		{"zephyr", nil, true, ""},
		{"gemma", conversation[1:], true,
			"<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n" +
				"<start_of_turn>user\nName a colour.<end_of_turn>\n<start_of_turn>model\n"},
		{"phi3", conversation, true,
			"<s><|user|>\nHi there <|end|>\n<|assistant|>\n Hello.<|end|>\n<|user|>\nName a colour.<|end|>\n<|assistant|>\n"},
	}
	for _, c := range cases {
		tmpl, err := TemplateByName(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if tmpl.Name() != c.name {
			t.Errorf("Name() = %q, want %q", tmpl.Name(), c.name)
		}
		got, err := tmpl.Render(c.msgs, c.gen)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestTemplatesRejectWhatTheirJinjaRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		msgs []Message
	}{
		{"llama2", []Message{{"user", "a"}, {"user", "b"}}},
		{"llama2", []Message{{"assistant", "a"}}},
		{"mistral", conversation},                            // system first
		{"mistral", []Message{{"user", "a"}, {"tool", "b"}}}, // unknown role
		{"gemma", conversation},
	} {
		tmpl, _ := TemplateByName(c.name)
		if _, err := tmpl.Render(c.msgs, true); !errors.Is(err, ErrRoles) {
			t.Errorf("%s %v: err = %v, want ErrRoles", c.name, c.msgs, err)
		}
	}
	if _, err := TemplateByName("vicuna"); err == nil {
		t.Error("unknown template name accepted")
	}
}

func TestDetectTemplate(t *testing.T) {
	cases := []struct {
		snippet, family string
	}{
		{"{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}", "chatml"},
		{"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' %}", "llama3"},
		{"{% set content = '<<SYS>>\\n' + system_message %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}", "llama2"},
		{"{{ bos_token }}{% for message in messages %}{{ '[INST] ' + message['content'] + ' [/INST]' }}", "mistral"},
		{"{{ '<|user|>\\n' + message['content'] + eos_token }}", "zephyr"},
		{"{{'<|user|>' + '\\n' + message['content'] + '<|end|>' + '\\n' + '<|assistant|>' + '\\n'}}", "phi3"},
		{"{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}", "gemma"},
	}
	for _, c := range cases {
		tmpl, ok := DetectTemplate(c.snippet)
		if !ok || tmpl.Name() != c.family {
			t.Errorf("%q: detected %v %v, want %s", c.snippet, tmpl, ok, c.family)
		}
	}
	if _, ok := DetectTemplate("{{ messages }}"); ok {
		t.Error("a template without known markers was recognised")
	}
}

// TestTemplatesFromReferenceVocabs detects the chat templates stored in the
// Qwen2 and Phi-3 reference vocabularies and renders with them.
func TestTemplatesFromReferenceVocabs(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "models", "vocab")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference data %s is absent (it lives beside the checkout as ../shared): %v", dir, err)
	}
	jinja := func(name string) string {
		f, err := gguf.Open(filepath.Join(dir, "ggml-vocab-"+name+".gguf"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		s, ok := f.String("tokenizer.chat_template")
		if !ok {
			t.Fatalf("%s has no chat template", name)
		}
		return s
	}

	tmpl, ok := DetectTemplate(jinja("qwen2"))
	if !ok || tmpl.Name() != "chatml" {
		t.Fatalf("qwen2: detected %v %v", tmpl, ok)
	}
	got, err := tmpl.Render([]Message{{"user", "Hi"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	// Qwen2's template adds its default system prompt when there is none.
	want := "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Errorf("qwen2: got %q\nwant %q", got, want)
	}
	got, _ = tmpl.Render(conversation[:2], false)
	if want := "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there <|im_end|>\n"; got != want {
		t.Errorf("qwen2 with system: got %q\nwant %q", got, want)
	}

	tmpl, ok = DetectTemplate(jinja("phi-3"))
	if !ok || tmpl.Name() != "phi3" {
		t.Fatalf("phi-3: detected %v %v", tmpl, ok)
	}
	got, _ = tmpl.Render([]Message{{"user", "Hi"}}, true)
	if want := "<s><|user|>\nHi<|end|>\n<|assistant|>\n"; got != want {
		t.Errorf("phi-3: got %q\nwant %q", got, want)
	}
}

func TestWithSpecialTokens(t *testing.T) {
	tmpl, _ := TemplateByName("llama2")
	got, err := WithSpecialTokens(tmpl, "<BOS>", "<EOS>").Render(conversation[1:3], false)
	if err != nil {
		t.Fatal(err)
	}
	if want := "<BOS>[INST] Hi there [/INST] Hello. <EOS>"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Without a BOS text LLaMA 3's prompt starts at the first header, for
	// callers that let the tokenizer add BOS.
	tmpl, _ = TemplateByName("llama3")
	got, _ = WithSpecialTokens(tmpl, "", "").Render([]Message{{"user", "x"}}, false)
	if want := "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if c := WithSpecialTokens(ChatML{}, "a", "b"); c != (ChatML{}) {
		t.Errorf("ChatML has no special-token texts, got %+v", c)
	}
}
