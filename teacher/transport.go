package teacher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// attemptKey carries an *attemptState through go-openai's client to the
// HTTP layer, where the status, headers and transport failures of one
// attempt can be seen; go-openai drops the headers of error responses, and
// those carry Retry-After.
type attemptKey struct{}

type attemptState struct {
	// sendZeroTemperature adds "temperature":0 to the body: go-openai's
	// request structs tag temperature omitempty, so a zero would otherwise
	// be left out and the server would sample at its default of 1.
	sendZeroTemperature bool

	mu          sync.Mutex
	sent        bool
	status      int
	header      http.Header
	bodyReadErr error
}

func (s *attemptState) recordSent() {
	s.mu.Lock()
	s.sent = true
	s.mu.Unlock()
}

func (s *attemptState) recordResponse(resp *http.Response) {
	s.mu.Lock()
	s.status = resp.StatusCode
	s.header = resp.Header.Clone()
	s.mu.Unlock()
}

func (s *attemptState) recordBodyReadErr(err error) {
	s.mu.Lock()
	if s.bodyReadErr == nil {
		s.bodyReadErr = err
	}
	s.mu.Unlock()
}

// snapshot returns what the attempt saw so far.
func (s *attemptState) snapshot() (sent bool, status int, header http.Header, bodyReadErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, s.status, s.header, s.bodyReadErr
}

// recordingDoer sits between go-openai and the real HTTP client.
type recordingDoer struct {
	client *http.Client
}

func (d recordingDoer) Do(req *http.Request) (*http.Response, error) {
	state, _ := req.Context().Value(attemptKey{}).(*attemptState)
	if state == nil {
		return d.client.Do(req)
	}
	if state.sendZeroTemperature && req.Body != nil {
		if err := setZeroTemperature(req); err != nil {
			return nil, err
		}
	}
	state.recordSent()
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	state.recordResponse(resp)
	resp.Body = &recordingBody{ReadCloser: resp.Body, state: state}
	return resp, nil
}

// recordingBody notes a failed read, so a connection dropped in the middle
// of a body can be told apart from a body that arrived whole but malformed.
type recordingBody struct {
	io.ReadCloser
	state *attemptState
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.state.recordBodyReadErr(err)
	}
	return n, err
}

func setZeroTemperature(req *http.Request) error {
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return fmt.Errorf("reading request body to set temperature 0: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return fmt.Errorf("decoding request body to set temperature 0: %w", err)
	}
	if _, present := fields["temperature"]; !present {
		fields["temperature"] = json.RawMessage("0")
		if body, err = json.Marshal(fields); err != nil {
			return fmt.Errorf("encoding request body with temperature 0: %w", err)
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return nil
}
