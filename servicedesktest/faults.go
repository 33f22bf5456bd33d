package servicedesktest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
)

// Fault is a failure to inject: the next Times requests that match Method
// and Path get it instead of their answer.
type Fault struct {
	// Method matches the request's method; "" matches any.
	Method string
	// Path matches the escaped path below the context path, "*" standing
	// for one segment ("/rest/servicedeskapi/servicedesk/*/customer"); ""
	// matches any.
	Path string
	// Times is how many requests it hits; 0 means 1.
	Times int
	// Status is the status answered; 503 when zero.
	Status int
	// Header is added to the answer (Retry-After, say).
	Header http.Header
	// Body is the answer's body; by default an HTML error page, as
	// Atlassian's edge sends.
	Body string
	// Drop closes the connection without answering.
	Drop bool
	// After lets the server act on the request first and then fail it:
	// a Create that the client saw fail has still created the customer.
	After bool
}

// Inject arms a fault. Faults are tried in the order they were injected;
// the first that matches a request takes it.
func (s *Server) Inject(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	if f.Status == 0 {
		f.Status = http.StatusServiceUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// FailNext answers the next n requests with status (a 5xx, say) and an HTML
// page, as Atlassian's edge does, before looking at them. It is
// Inject(Fault{Times: n, Status: status}).
func (s *Server) FailNext(n, status int) {
	if n > 0 {
		s.Inject(Fault{Times: n, Status: status})
	}
}

// fault takes the first armed fault that matches r, or nil. Callers hold
// s.mu.
func (s *Server) fault(r *http.Request, path string) *Fault {
	for i, f := range s.faults {
		if (f.Method == "" || strings.EqualFold(f.Method, r.Method)) && (f.Path == "" || matchPath(f.Path, path)) {
			if f.Times--; f.Times == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return f
		}
	}
	return nil
}

// fail answers r with f; serve is the server's own answer, run first for
// an After fault. It returns the status sent, 0 for a dropped connection.
func (f *Fault) fail(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter)) int {
	if f.After {
		serve(httptest.NewRecorder()) // acted on, answer discarded
	}
	if f.Drop {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
			return 0
		}
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
	}
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.Body == "" {
		writeHTML(w, f.Status)
		return f.Status
	}
	if w.Header().Get("Content-Type") == "" {
		ct := "text/plain; charset=UTF-8"
		if b := strings.TrimSpace(f.Body); strings.HasPrefix(b, "{") || strings.HasPrefix(b, "[") {
			ct = "application/json;charset=UTF-8"
		}
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(f.Status)
	_, _ = fmt.Fprint(w, f.Body)
	return f.Status
}
