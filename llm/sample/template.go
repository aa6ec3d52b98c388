package sample

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// Message is one turn of a conversation. Role is "system", "user" or
// "assistant".
type Message struct{ Role, Content string }

// Template renders a conversation into a model's prompt format, producing
// the same text as the family's Jinja chat template (rendered the way
// Hugging Face does, with trim_blocks and lstrip_blocks).
//
// Templates that start with a BOS text ("<s>", "<|begin_of_text|>") render
// it like their Jinja does; tokenize such a prompt with parseSpecial and
// without addSpecial, or the BOS is doubled.
type Template interface {
	Name() string
	Render(msgs []Message, addGenerationPrompt bool) (string, error)
}

// ErrRoles is wrapped by Render errors for conversations a template refuses
// (the Jinja's raise_exception).
var ErrRoles = errors.New("chat template: unsupported message roles")

// ChatML is the <|im_start|>role\n...<|im_end|> format (Qwen, many
// fine-tunes). With DefaultSystem set, a conversation that does not start
// with a system message gets one, as Qwen2's template does.
type ChatML struct{ DefaultSystem string }

func (ChatML) Name() string { return "chatml" }

func (t ChatML) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	var b strings.Builder
	for i, m := range msgs {
		if i == 0 && m.Role != "system" && t.DefaultSystem != "" {
			b.WriteString("<|im_start|>system\n" + t.DefaultSystem + "<|im_end|>\n")
		}
		b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
	}
	if addGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
	}
	return b.String(), nil
}

// Llama3 is Meta's LLaMA 3 Instruct format. Contents are trimmed, as the
// template's `| trim` does.
type Llama3 struct{ BOS string }

func (Llama3) Name() string { return "llama3" }

func (t Llama3) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	var b strings.Builder
	for i, m := range msgs {
		if i == 0 {
			b.WriteString(t.BOS)
		}
		b.WriteString("<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n" + pyStrip(m.Content) + "<|eot_id|>")
	}
	if addGenerationPrompt {
		b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	}
	return b.String(), nil
}

// Llama2 is Meta's LLaMA 2 Chat format: [INST] turns, the system prompt in
// <<SYS>> inside the first one. Its Jinja has no generation prompt (the
// prompt ends with [/INST]); user and assistant turns must alternate.
type Llama2 struct{ BOS, EOS string }

func (Llama2) Name() string { return "llama2" }

func (t Llama2) Render(msgs []Message, _ bool) (string, error) {
	system, hasSystem := "", false
	if len(msgs) > 0 && msgs[0].Role == "system" {
		system, hasSystem = msgs[0].Content, true
		msgs = msgs[1:]
	}
	var b strings.Builder
	for i, m := range msgs {
		if (m.Role == "user") != (i%2 == 0) {
			return "", fmt.Errorf("llama2 template, message %d (%s): %w: conversation roles must alternate user/assistant/user/assistant/...", i, m.Role, ErrRoles)
		}
		content := m.Content
		if i == 0 && hasSystem {
			content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content
		}
		switch m.Role {
		case "user":
			b.WriteString(t.BOS + "[INST] " + pyStrip(content) + " [/INST]")
		case "assistant":
			b.WriteString(" " + pyStrip(content) + " " + t.EOS)
		}
	}
	return b.String(), nil
}

// Mistral is Mistral Instruct v0.1's format: one BOS, then [INST] turns with
// the answers glued to "[/INST]". It has no system role.
type Mistral struct{ BOS, EOS string }

func (Mistral) Name() string { return "mistral" }

func (t Mistral) Render(msgs []Message, _ bool) (string, error) {
	var b strings.Builder
	b.WriteString(t.BOS)
	for i, m := range msgs {
		if (m.Role == "user") != (i%2 == 0) {
			return "", fmt.Errorf("mistral template, message %d (%s): %w: conversation roles must alternate user/assistant/user/assistant/...", i, m.Role, ErrRoles)
		}
		switch m.Role {
		case "user":
			b.WriteString("[INST] " + m.Content + " [/INST]")
		case "assistant":
			b.WriteString(m.Content + t.EOS)
		default:
			return "", fmt.Errorf("mistral template, message %d (%s): %w: only user and assistant roles are supported", i, m.Role, ErrRoles)
		}
	}
	return b.String(), nil
}

// Zephyr is the <|user|>\n...</s>\n format of Zephyr and TinyLlama Chat.
// Messages with other roles render as nothing, as in the Jinja.
type Zephyr struct{ EOS string }

func (Zephyr) Name() string { return "zephyr" }

func (t Zephyr) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	var b strings.Builder
	for i, m := range msgs {
		switch m.Role {
		case "user", "system", "assistant":
			b.WriteString("<|" + m.Role + "|>\n" + m.Content + t.EOS + "\n")
		}
		// The generation prompt sits inside the loop: no messages, no prompt.
		if i == len(msgs)-1 && addGenerationPrompt {
			b.WriteString("<|assistant|>\n")
		}
	}
	return b.String(), nil
}

// Phi3 is Phi-3's format. Its Jinja drops system messages and always opens
// an assistant turn after a user message.
type Phi3 struct{ BOS string }

func (Phi3) Name() string { return "phi3" }

func (t Phi3) Render(msgs []Message, _ bool) (string, error) {
	var b strings.Builder
	b.WriteString(t.BOS)
	for _, m := range msgs {
		switch m.Role {
		case "user":
			b.WriteString("<|user|>\n" + m.Content + "<|end|>\n<|assistant|>\n")
		case "assistant":
			b.WriteString(m.Content + "<|end|>\n")
		}
	}
	return b.String(), nil
}

// Gemma is Google Gemma's <start_of_turn> format: the assistant is called
// "model", contents are trimmed, there is no system role and turns must
// alternate.
type Gemma struct{ BOS string }

func (Gemma) Name() string { return "gemma" }

func (t Gemma) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	var b strings.Builder
	b.WriteString(t.BOS)
	if len(msgs) > 0 && msgs[0].Role == "system" {
		return "", fmt.Errorf("gemma template: %w: system role not supported", ErrRoles)
	}
	for i, m := range msgs {
		if (m.Role == "user") != (i%2 == 0) {
			return "", fmt.Errorf("gemma template, message %d (%s): %w: conversation roles must alternate user/assistant/user/assistant/...", i, m.Role, ErrRoles)
		}
		role := m.Role
		if role == "assistant" {
			role = "model"
		}
		b.WriteString("<start_of_turn>" + role + "\n" + pyStrip(m.Content) + "<end_of_turn>\n")
	}
	if addGenerationPrompt {
		b.WriteString("<start_of_turn>model\n")
	}
	return b.String(), nil
}

// templates by name, with each family's usual special-token texts.
var templates = map[string]Template{
	"chatml":    ChatML{},
	"llama3":    Llama3{BOS: "<|begin_of_text|>"},
	"llama2":    Llama2{BOS: "<s>", EOS: "</s>"},
	"mistral":   Mistral{BOS: "<s>", EOS: "</s>"},
	"zephyr":    Zephyr{EOS: "</s>"},
	"tinyllama": Zephyr{EOS: "</s>"},
	"phi3":      Phi3{BOS: "<s>"},
	"gemma":     Gemma{BOS: "<bos>"},
}

// TemplateByName returns a template by family name: chatml (Qwen), llama3,
// llama2, mistral, zephyr (alias tinyllama), phi3, gemma.
func TemplateByName(name string) (Template, error) {
	if t, ok := templates[strings.ToLower(name)]; ok {
		return t, nil
	}
	names := make([]string, 0, len(templates))
	for n := range templates {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("chat template %q unknown (known: %s)", name, strings.Join(names, ", "))
}

// DetectTemplate recognises the family of a tokenizer.chat_template by the
// markers it writes. A ChatML template that adds a default system prompt
// (Qwen2's) gets that prompt.
func DetectTemplate(jinja string) (Template, bool) {
	switch {
	case strings.Contains(jinja, "<|im_start|>"):
		return ChatML{DefaultSystem: chatMLDefaultSystem(jinja)}, true
	case strings.Contains(jinja, "<|start_header_id|>"):
		return templates["llama3"], true
	case strings.Contains(jinja, "[INST]") && strings.Contains(jinja, "<<SYS>>"):
		return templates["llama2"], true
	case strings.Contains(jinja, "[INST]"):
		return templates["mistral"], true
	case strings.Contains(jinja, "<start_of_turn>"):
		return templates["gemma"], true
	case strings.Contains(jinja, "<|user|>") && strings.Contains(jinja, "<|end|>"):
		return templates["phi3"], true
	case strings.Contains(jinja, "<|user|>"):
		return templates["zephyr"], true
	}
	return nil, false
}

// WithSpecialTokens returns t rendering bos and eos as its BOS/EOS texts
// (e.g. a vocabulary's own), for the families whose templates write them.
func WithSpecialTokens(t Template, bos, eos string) Template {
	switch v := t.(type) {
	case Llama3:
		v.BOS = bos
		return v
	case Llama2:
		v.BOS, v.EOS = bos, eos
		return v
	case Mistral:
		v.BOS, v.EOS = bos, eos
		return v
	case Zephyr:
		v.EOS = eos
		return v
	case Phi3:
		v.BOS = bos
		return v
	case Gemma:
		v.BOS = bos
		return v
	}
	return t
}

// chatMLDefaultSystem extracts the literal system prompt a ChatML template
// inserts when the conversation has none, or "".
func chatMLDefaultSystem(jinja string) string {
	if !strings.Contains(jinja, "!= 'system'") && !strings.Contains(jinja, `!= "system"`) {
		return ""
	}
	const open = "<|im_start|>system"
	i := strings.Index(jinja, open)
	if i < 0 {
		return ""
	}
	rest := jinja[i+len(open):]
	switch {
	case strings.HasPrefix(rest, "\n"):
		rest = rest[1:]
	case strings.HasPrefix(rest, `\n`):
		rest = rest[2:]
	default:
		return ""
	}
	end := strings.Index(rest, "<|im_end|>")
	if end < 0 {
		return ""
	}
	text := rest[:end]
	// An expression (message['content'] ...) is not a literal prompt.
	if strings.ContainsAny(text, "'\"{}+") {
		return ""
	}
	return strings.ReplaceAll(text, `\n`, "\n")
}

// pyStrip is Python's str.strip(): Unicode whitespace plus the ASCII
// separators U+001C..U+001F that Python also counts as space.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x1C && r <= 0x1F)
	})
}
