// Package s3store implements faceauth.Store on Amazon S3 and S3-compatible
// servers through aws-sdk-go-v2.
//
// Conditional writes use S3's own conditional PutObject (If-Match with the
// ETag, If-None-Match: *), so the compare-and-swap is done by S3, atomically,
// with no lock table beside the bucket. The version tag of an object is its
// ETag, as S3 returns it (with quotes).
//
// Credentials come from the default chain (environment, shared profile, web
// identity, EC2 instance role through IMDS) unless Config sets static ones.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/store"
)

// The server-side encryption modes of Config.SSE.
const (
	SSENone = ""        // the bucket's default encryption (S3 encrypts all new objects with SSE-S3 at least)
	SSES3   = "AES256"  // SSE-S3: keys managed by S3
	SSEKMS  = "aws:kms" // SSE-KMS: a KMS key, Config.KMSKeyID or the aws/s3 key
)

// Config configures a Store.
type Config struct {
	// Bucket is the bucket name. Required.
	Bucket string
	// Region is the bucket's region. Empty takes AWS_REGION or the shared
	// config's region.
	Region string
	// Endpoint, when set, is the URL of an S3-compatible server, e.g.
	// "http://127.0.0.1:7070"; it implies path-style addressing.
	Endpoint string
	// Prefix, when set, is put before every key, so that several stores
	// can share a bucket. A missing trailing '/' is added.
	Prefix string
	// SSE is the server-side encryption requested for every write: SSENone,
	// SSES3 or SSEKMS.
	SSE string
	// KMSKeyID is the KMS key id or ARN for SSEKMS; empty uses the account's
	// aws/s3 key.
	KMSKeyID string

	// AccessKeyID, SecretAccessKey and SessionToken, when set, replace the
	// default credential chain. Meant for tests and S3-compatible servers.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	// HTTPClient, when set, sends the requests, e.g. through a proxy or a
	// custom TLS configuration.
	HTTPClient aws.HTTPClient
}

// Store is a faceauth.Store on an S3 bucket. It is safe for concurrent use,
// also by several processes and hosts.
type Store struct {
	client   *s3.Client
	creds    aws.CredentialsProvider
	bucket   string
	region   string
	endpoint string // for messages
	prefix   string // "" or ending in '/'
	sse      types.ServerSideEncryption
	kmsKeyID string
}

var _ faceauth.Store = (*Store)(nil)

// New returns a Store for cfg. It checks the configuration but does not
// contact S3; Ping does.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, faceauth.E(faceauth.KindUnavailable, CodeNotConfigured, "%s", MsgNotConfigured)
	}
	switch cfg.SSE {
	case SSENone, SSES3, SSEKMS:
	default:
		return nil, faceauth.E(faceauth.KindInvalid, CodeBadConfig,
			"The S3 server-side encryption %q is not supported. Set S3_SSE to AES256 or aws:kms, or leave it empty.", cfg.SSE)
	}
	if cfg.KMSKeyID != "" && cfg.SSE != SSEKMS {
		return nil, faceauth.E(faceauth.KindInvalid, CodeBadConfig,
			"A KMS key is set but S3 encryption is not aws:kms. Set S3_SSE=aws:kms or remove S3_KMS_KEY_ID.")
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, faceauth.E(faceauth.KindInvalid, CodeBadConfig,
			"Only one of the S3 access key id and secret key is set. Set both or neither.")
	}
	prefix := strings.TrimSuffix(cfg.Prefix, "/")
	if prefix != "" {
		if err := store.ValidateKey(prefix); err != nil {
			return nil, faceauth.Wrap(err, faceauth.KindInvalid, CodeBadConfig,
				"The S3 key prefix %q is not valid. Use letters, digits, '.', '_', '-' and '/' separated segments.", cfg.Prefix)
		}
		prefix += "/"
	}

	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, faceauth.Wrap(err, faceauth.KindInvalid, CodeBadConfig,
			"The AWS configuration could not be loaded. Check AWS_PROFILE, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE.")
	}
	if awsCfg.Region == "" {
		return nil, faceauth.E(faceauth.KindUnavailable, CodeNoRegion, "%s", MsgNoRegion)
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "https://s3." + awsCfg.Region + ".amazonaws.com"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
		// Set here rather than in LoadDefaultConfig, which refuses a
		// custom client when AWS_CA_BUNDLE is set; the credential
		// providers keep the default client and the bundle.
		if cfg.HTTPClient != nil {
			o.HTTPClient = cfg.HTTPClient
		}
	})
	return &Store{
		client:   client,
		creds:    awsCfg.Credentials,
		bucket:   cfg.Bucket,
		region:   awsCfg.Region,
		endpoint: endpoint,
		prefix:   prefix,
		sse:      types.ServerSideEncryption(cfg.SSE),
		kmsKeyID: cfg.KMSKeyID,
	}, nil
}

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Region returns the region the store talks to.
func (s *Store) Region() string { return s.region }

// Get implements faceauth.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, string, error) {
	if err := store.ValidateKey(key); err != nil {
		return nil, "", err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		return nil, "", s.classify(ctx, "get", key, err, false)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", s.classify(ctx, "get", key, err, false)
	}
	return data, aws.ToString(out.ETag), nil
}

// ModTime returns when the object at key was last written: its
// LastModified, by the S3 server's clock. The sweep uses it to tell a
// crash's leftover image from one a register in flight has just written.
func (s *Store) ModTime(ctx context.Context, key string) (time.Time, error) {
	if err := store.ValidateKey(key); err != nil {
		return time.Time{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		return time.Time{}, s.classify(ctx, "head", key, err, false)
	}
	if out.LastModified == nil {
		err := fmt.Errorf("s3store: head s3://%s/%s%s: the answer has no Last-Modified", s.bucket, s.prefix, key)
		return time.Time{}, faceauth.Wrap(err, faceauth.KindInternal, CodeFailed, "%s", MsgFailed(s.bucket))
	}
	return *out.LastModified, nil
}

// Put implements faceauth.Store.
//
// A conditional Put is sent once, without the SDK's retries: a retry of a
// write that S3 did apply would fail its own condition and report a lost
// race that was in fact won. An unavailable error from a conditional Put
// therefore means the outcome is unknown; read the object to learn it.
func (s *Store) Put(ctx context.Context, key string, data []byte, cond faceauth.Cond) (string, error) {
	if err := store.ValidateKey(key); err != nil {
		return "", err
	}
	if cond.IfMatch != "" && cond.IfNoneMatch {
		return "", faceauth.E(faceauth.KindInvalid, "invalid_condition", "A write cannot require both a version match and that the object does not exist.")
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.prefix + key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	conditional := false
	if cond.IfMatch != "" {
		in.IfMatch = aws.String(cond.IfMatch)
		conditional = true
	}
	if cond.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
		conditional = true
	}
	if s.sse != "" {
		in.ServerSideEncryption = s.sse
		if s.kmsKeyID != "" {
			in.SSEKMSKeyId = aws.String(s.kmsKeyID)
		}
	}
	var optFns []func(*s3.Options)
	if conditional {
		optFns = append(optFns, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	}
	out, err := s.client.PutObject(ctx, in, optFns...)
	if err != nil {
		return "", s.classify(ctx, "put", key, err, cond.IfMatch != "")
	}
	return aws.ToString(out.ETag), nil
}

// Delete implements faceauth.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := store.ValidateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		err = s.classify(ctx, "delete", key, err, false)
		if errors.Is(err, faceauth.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// maxKeys is the most keys S3 returns in one listing page.
const maxKeys = 1000

// List implements faceauth.Store.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, faceauth.E(faceauth.KindInvalid, "invalid_limit", "The listing limit must be positive.")
	}
	var (
		keys  []string
		token *string
	)
	for len(keys) < limit {
		in := &s3.ListObjectsV2Input{
			Bucket:  aws.String(s.bucket),
			Prefix:  aws.String(s.prefix + prefix),
			MaxKeys: aws.Int32(int32(min(limit-len(keys), maxKeys))),
		}
		if token != nil {
			in.ContinuationToken = token
		} else if startAfter != "" {
			in.StartAfter = aws.String(s.prefix + startAfter)
		}
		out, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, s.classify(ctx, "list", prefix, err, false)
		}
		for _, o := range out.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			// Objects that no key names (folder markers, foreign uploads)
			// are not listed: the caller could not read them.
			if ok && store.ValidateKey(key) == nil && key > startAfter {
				keys = append(keys, key)
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			break
		}
		token = out.NextContinuationToken
	}
	if len(keys) > limit {
		keys = keys[:limit]
	}
	return keys, nil
}

// Ping implements faceauth.Store: it checks that there are credentials and
// that the bucket exists and lets them list it.
//
// It lists at most one key rather than sending HeadBucket: a HEAD answer
// has no body, so a 403 or 404 would not say whether the bucket is missing,
// the key id unknown or the policy too narrow, and the sentence could not
// name the fix. Listing needs s3:ListBucket, as HeadBucket does.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.creds.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return faceauth.Wrap(err, faceauth.KindUnavailable, CodeNoCredentials, "%s", MsgNoCredentials)
	}
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(s.prefix),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return s.classify(ctx, "check bucket", "", err, false)
	}
	return nil
}

// iamAction is the IAM action an operation of classify needs.
func iamAction(op string) string {
	switch op {
	case "get", "head":
		return "s3:GetObject"
	case "put":
		return "s3:PutObject"
	case "delete":
		return "s3:DeleteObject"
	case "list", "check bucket":
		return "s3:ListBucket"
	}
	return ""
}

// classify turns an SDK error into one that says what to do. ifMatch
// reports a Put conditional on a version, for which a missing object is a
// failed condition.
func (s *Store) classify(ctx context.Context, op, key string, err error, ifMatch bool) error {
	where := fmt.Sprintf("s3store: %s s3://%s/%s%s", op, s.bucket, s.prefix, key)
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", where, ctx.Err())
	}
	wrap := func(kind faceauth.Kind, code, msg string) error {
		return faceauth.Wrap(fmt.Errorf("%s: %w", where, err), kind, code, "%s", msg)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch {
		case code == "NoSuchKey" && ifMatch:
			return fmt.Errorf("%s: object does not exist: %w", where, faceauth.ErrPrecondition)
		case code == "NoSuchKey" || (code == "NotFound" && key != ""):
			return faceauth.Wrap(fmt.Errorf("%s: %w", where, err), faceauth.KindNotFound, faceauth.ErrNotFound.Code, "%s", faceauth.ErrNotFound.Msg)
		case code == "PreconditionFailed" || code == "ConditionalRequestConflict":
			return fmt.Errorf("%s: %s: %w", where, code, faceauth.ErrPrecondition)
		case code == "NoSuchBucket" || code == "NotFound":
			return wrap(faceauth.KindUnavailable, CodeNoBucket, MsgNoBucket(s.bucket, s.region))
		case strings.HasPrefix(code, "KMS.") || (code == "AccessDenied" && s.sse == SSEKMS && strings.Contains(strings.ToLower(ae.ErrorMessage()), "kms")):
			return wrap(faceauth.KindUnavailable, CodeKMS, MsgKMS(s.bucket, s.kmsKeyID))
		case (code == "AccessDenied" || code == "Forbidden") && iamAction(op) != "":
			// Signed by a known identity, refused by its policy: name the
			// action the policy lacks.
			return wrap(faceauth.KindUnavailable, CodeAccessDenied, MsgActionDenied(s.bucket, iamAction(op)))
		case code == "AccessDenied" || code == "Forbidden" || code == "SignatureDoesNotMatch" ||
			code == "InvalidAccessKeyId" || code == "InvalidToken" || code == "ExpiredToken" ||
			code == "TokenRefreshRequired" || code == "AllAccessDisabled" || code == "InvalidSecurity" ||
			code == "XAdminUserNotFound": // versitygw's answer to an unknown key id
			return wrap(faceauth.KindUnavailable, CodeAccessDenied, MsgAccessDenied(s.bucket))
		case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" ||
			code == "IllegalLocationConstraintException" || code == "MovedPermanently" || code == "301":
			return wrap(faceauth.KindUnavailable, CodeWrongRegion, MsgWrongRegion(s.bucket, s.region))
		}
		// The SDK's response errors wrap each other; any of them knows
		// the status.
		var re interface{ HTTPStatusCode() int }
		if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
			return wrap(faceauth.KindUnavailable, CodeFailed, MsgFailed(s.bucket))
		}
		return wrap(faceauth.KindInternal, CodeFailed, MsgFailed(s.bucket))
	}
	// No answer from S3: either the request could not be signed or it did
	// not get through.
	if _, cerr := s.creds.Retrieve(ctx); cerr != nil {
		return wrap(faceauth.KindUnavailable, CodeNoCredentials, MsgNoCredentials)
	}
	var (
		sendErr *smithyhttp.RequestSendError
		opErr   *net.OpError
		dnsErr  *net.DNSError
	)
	if errors.As(err, &sendErr) || errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return wrap(faceauth.KindUnavailable, CodeUnreachable, MsgUnreachable(s.endpoint))
	}
	return wrap(faceauth.KindUnavailable, CodeFailed, MsgFailed(s.bucket))
}
