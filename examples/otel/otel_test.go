package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

func value(attrs []attribute.KeyValue, key string) (attribute.Value, bool) {
	for _, kv := range attrs {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// TestOneSpanPerCallWithAttemptsAsChildren runs calls against the fake JSM
// with in-memory exporters and checks what a collector would receive.
func TestOneSpanPerCallWithAttemptsAsChildren(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(RedactQuery(spans)))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	srv := servicedesktest.NewServer()
	defer srv.Close()
	opts, err := Instrument(tp, mp)
	require.NoError(t, err)
	c, err := servicedesk.NewClient(srv.URL, append(opts, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))...)
	require.NoError(t, err)

	srv.Inject(servicedesktest.Fault{Method: http.MethodGet, Times: 2, Status: http.StatusServiceUnavailable})
	_, err = c.Customers.List(ctx, "HELP", &servicedesk.ListCustomersOptions{Query: "mary@example.com"})
	require.NoError(t, err)
	_, err = c.Customers.List(ctx, "NOPE", nil)
	require.ErrorIs(t, err, servicedesk.ErrNotFound)

	ended := spans.Ended()
	require.Len(t, ended, 2+3+1, "two call spans, three attempts, one attempt")
	var calls []sdktrace.ReadOnlySpan
	for _, s := range ended {
		if strings.HasPrefix(s.Name(), "servicedesk ") {
			calls = append(calls, s)
		}
	}
	require.Len(t, calls, 2)
	list := calls[0]
	assert.Equal(t, "servicedesk CustomersService.List", list.Name())
	template, _ := value(list.Attributes(), "url.template")
	assert.Equal(t, "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer", template.AsString())
	attempts, _ := value(list.Attributes(), "servicedesk.attempts")
	assert.EqualValues(t, 3, attempts.AsInt64())
	assert.Len(t, list.Events(), 3, "an event per attempt")
	var children []sdktrace.ReadOnlySpan
	for _, s := range ended {
		if s.Parent().SpanID() == list.SpanContext().SpanID() {
			children = append(children, s)
		}
	}
	require.Len(t, children, 3, "each attempt is a child span of its call")
	for i, child := range children {
		status, _ := value(child.Attributes(), "http.response.status_code")
		assert.EqualValues(t, map[int]int64{0: 503, 1: 503, 2: 200}[i], status.AsInt64())
		full, _ := value(child.Attributes(), "url.full")
		assert.NotContains(t, full.AsString(), "mary", "the query is redacted before export")
		assert.Equal(t, list.SpanContext().TraceID(), child.SpanContext().TraceID())
	}

	failed := calls[1]
	assert.Equal(t, codes.Error, failed.Status().Code)
	class, _ := value(failed.Attributes(), "error.type")
	assert.Equal(t, "not_found", class.AsString())

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != instrumentationName {
			continue
		}
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range data.DataPoints {
					class, _ := p.Attributes.Value("servicedesk.class")
					got[m.Name+"/"+class.AsString()] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range data.DataPoints {
					got[m.Name] += int64(p.Count)
				}
			}
		}
	}
	assert.Equal(t, map[string]int64{
		"servicedesk.client.calls/ok":        1,
		"servicedesk.client.calls/not_found": 1,
		"servicedesk.client.retries/":        2,
		"servicedesk.client.call.duration":   2,
		"servicedesk.client.rate_limit.wait": 2,
	}, got)
}

func TestRun(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out))
	assert.Contains(t, out.String(), "  servicedesk CustomersService.List (Unset)\n    HTTP GET 503\n    HTTP GET 200\n")
	assert.Contains(t, out.String(), "servicedesk.client.retries{CustomersService.List} 1")
}
