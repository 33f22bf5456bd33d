// Command otel bridges the SDK's hooks to OpenTelemetry: one span per call,
// with each attempt a child span (from otelhttp, which also propagates the
// trace to the server), and per-operation metrics: calls, their duration,
// retries and the time spent waiting for Jira's rate limits.
//
//	go run .   # in examples/otel: against the in-memory JSM, printing what was recorded
//
// It is a module of its own, so that the SDK's go.mod does not depend on
// OpenTelemetry. Copy Instrument into your service and pass it your
// TracerProvider and MeterProvider.
package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/servicedesk-go/servicedesk"
)

// instrumentationName names the tracer and the meter.
const instrumentationName = "github.com/servicedesk-go/servicedesk"

// Instrument returns the options that make a client trace its calls with tp
// and measure them with mp.
func Instrument(tp trace.TracerProvider, mp metric.MeterProvider) ([]servicedesk.Option, error) {
	tracer := tp.Tracer(instrumentationName)
	meter := mp.Meter(instrumentationName)
	calls, err1 := meter.Int64Counter("servicedesk.client.calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls made, by operation and how they ended."))
	duration, err2 := meter.Float64Histogram("servicedesk.client.call.duration", metric.WithUnit("s"),
		metric.WithDescription("How long calls took, retries and waits included."))
	retries, err3 := meter.Int64Counter("servicedesk.client.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Attempts after the first."))
	waited, err4 := meter.Float64Histogram("servicedesk.client.rate_limit.wait", metric.WithUnit("s"),
		metric.WithDescription("Time calls were held back by the rate limiter: paced, or paused after a 429."))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	hooks := servicedesk.Hooks{
		CallStart: func(ctx context.Context, c servicedesk.CallInfo) context.Context {
			ctx, _ = tracer.Start(ctx, "servicedesk "+c.Operation, trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(callAttributes(c)...))
			return ctx
		},
		Attempt: func(ctx context.Context, a servicedesk.AttemptInfo) {
			trace.SpanFromContext(ctx).AddEvent("attempt", trace.WithAttributes(
				attribute.Int("servicedesk.attempt", a.Attempt),
				attribute.Int("http.response.status_code", a.StatusCode),
				attribute.String("servicedesk.class", string(a.Class)),
				attribute.Float64("servicedesk.waited", a.Waited.Seconds()),
				attribute.Bool("servicedesk.retry", a.Retry)))
		},
		CallEnd: func(ctx context.Context, r servicedesk.CallResult) {
			span := trace.SpanFromContext(ctx)
			span.SetAttributes(attribute.Int("servicedesk.attempts", r.Attempts))
			if r.StatusCode != 0 {
				span.SetAttributes(attribute.Int("http.response.status_code", r.StatusCode))
			}
			if r.RequestID != "" {
				span.SetAttributes(attribute.String("servicedesk.request_id", r.RequestID))
			}
			if r.Err != nil {
				span.SetAttributes(attribute.String("error.type", string(r.Class)))
				span.SetStatus(codes.Error, r.Err.Error()) // the SDK's errors carry no credentials
			}
			span.End()

			byOperation := metric.WithAttributes(attribute.String("servicedesk.operation", r.Operation))
			byOutcome := metric.WithAttributes(attribute.String("servicedesk.operation", r.Operation), attribute.String("servicedesk.class", string(r.Class)))
			calls.Add(ctx, 1, byOutcome)
			duration.Record(ctx, r.Duration.Seconds(), byOutcome)
			if r.Attempts > 1 {
				retries.Add(ctx, int64(r.Attempts-1), byOperation)
			}
			waited.Record(ctx, r.Waited.Seconds(), byOperation)
		},
	}
	// otelhttp makes each attempt a child of the call's span: the SDK hands
	// it the context CallStart returned.
	transport := otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method }))
	return []servicedesk.Option{
		servicedesk.WithHooks(hooks),
		servicedesk.WithHTTPClient(&http.Client{Transport: transport}),
	}, nil
}

func callAttributes(c servicedesk.CallInfo) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("servicedesk.operation", c.Operation),
		attribute.String("http.request.method", c.Method),
		attribute.String("url.template", c.Path),
	}
}

// RedactQuery wraps a span processor (an exporter's batcher) so that the
// spans it sees have no query in url.full, which otelhttp records whole:
// the SDK's queries may hold a customer's email.
func RedactQuery(next sdktrace.SpanProcessor) sdktrace.SpanProcessor {
	return redactQuery{next}
}

type redactQuery struct{ sdktrace.SpanProcessor }

func (p redactQuery) OnEnd(s sdktrace.ReadOnlySpan) { p.SpanProcessor.OnEnd(withoutQuery{s}) }

// withoutQuery is a span whose url.full has its query replaced.
type withoutQuery struct{ sdktrace.ReadOnlySpan }

func (s withoutQuery) Attributes() []attribute.KeyValue {
	attrs := s.ReadOnlySpan.Attributes()
	for i, kv := range attrs {
		if kv.Key != "url.full" {
			continue
		}
		if u, err := url.Parse(kv.Value.AsString()); err == nil && u.RawQuery != "" {
			u.RawQuery = "REDACTED"
			attrs = append([]attribute.KeyValue(nil), attrs...)
			attrs[i] = attribute.String("url.full", u.String())
		}
	}
	return attrs
}
