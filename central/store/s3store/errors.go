package s3store

import "fmt"

// Stable error codes of the errors this package returns, for logs, metrics
// and API clients.
const (
	CodeNotConfigured = "s3_not_configured"
	CodeNoRegion      = "s3_no_region"
	CodeNoCredentials = "s3_no_credentials"
	CodeAccessDenied  = "s3_access_denied"
	CodeNoBucket      = "s3_no_bucket"
	CodeWrongRegion   = "s3_wrong_region"
	CodeKMS           = "s3_kms"
	CodeUnreachable   = "s3_unreachable"
	CodeBadConfig     = "s3_bad_config"
	CodeFailed        = "s3_failed"
)

// The sentences users see when S3 is not usable, each with its fix. The
// central service and docs/storage.md reuse them.
const (
	// MsgNotConfigured says that no bucket is set.
	MsgNotConfigured = "S3 is not configured. Set S3_BUCKET (and AWS credentials) in environment."
	// MsgNoRegion says that no region is set or discoverable.
	MsgNoRegion = "The AWS region is not set. Set AWS_REGION to the region of the S3 bucket."
	// MsgNoCredentials says that the default credential chain found
	// nothing. It starts with the words of the SDKs' own message (boto3's
	// "Unable to locate credentials"), which operators search for.
	MsgNoCredentials = "Unable to locate credentials for S3. Attach the IAM instance role to this EC2 instance (deploy/aws/setup.sh), or elsewhere set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE."
)

// MsgAccessDenied says that S3 refused the credentials or the request.
func MsgAccessDenied(bucket string) string {
	return fmt.Sprintf("Access to S3 bucket %q was denied. Check the credentials and that the IAM policy allows s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on it.", bucket)
}

// MsgActionDenied says that S3 accepted the credentials but the IAM
// policy does not allow action (e.g. "s3:PutObject") on the bucket.
func MsgActionDenied(bucket, action string) string {
	return fmt.Sprintf("Access to S3 bucket %q was denied for %s. Allow %s on it in the IAM policy of the instance role (deploy/aws/iam-policy.json).", bucket, action, action)
}

// MsgNoBucket says that the bucket does not exist.
func MsgNoBucket(bucket, region string) string {
	return fmt.Sprintf("S3 bucket %q does not exist in region %s. Create it or fix S3_BUCKET/AWS_REGION.", bucket, region)
}

// MsgWrongRegion says that the bucket lives in another region.
func MsgWrongRegion(bucket, region string) string {
	return fmt.Sprintf("S3 bucket %q is not in region %s. Set AWS_REGION to the bucket's region.", bucket, region)
}

// MsgKMS says that S3 could not use the KMS key for SSE-KMS.
func MsgKMS(bucket, keyID string) string {
	if keyID == "" {
		keyID = "aws/s3 (the default key)"
	}
	return fmt.Sprintf("S3 bucket %q could not use the KMS key %s. Check S3_KMS_KEY_ID and that the IAM policy allows kms:GenerateDataKey and kms:Decrypt on the key.", bucket, keyID)
}

// MsgUnreachable says that the S3 endpoint does not answer.
func MsgUnreachable(endpoint string) string {
	return fmt.Sprintf("The S3 endpoint %s cannot be reached. Check S3_ENDPOINT or AWS_REGION and the network.", endpoint)
}

// MsgFailed says that S3 returned an error this package does not know.
func MsgFailed(bucket string) string {
	return fmt.Sprintf("S3 bucket %q returned an unexpected error. Check the S3 service status and the log for the details.", bucket)
}
