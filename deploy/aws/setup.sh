#!/usr/bin/env bash
# Creates the S3 bucket (public access blocked, encrypted, versioned), the IAM
# role with the least privilege central needs, and its instance profile.
# Needs the AWS CLI with administrator credentials. Idempotent where AWS allows.
#
#   deploy/aws/setup.sh BUCKET REGION [ROLE_NAME]
set -euo pipefail
bucket=${1:?usage: setup.sh BUCKET REGION [ROLE_NAME]}
region=${2:?usage: setup.sh BUCKET REGION [ROLE_NAME]}
role=${3:-xplore-faceauth-central}
here=$(cd "$(dirname "$0")" && pwd)

if ! aws s3api head-bucket --bucket "$bucket" 2>/dev/null; then
  if [ "$region" = us-east-1 ]; then
    aws s3api create-bucket --bucket "$bucket" --region "$region"
  else
    aws s3api create-bucket --bucket "$bucket" --region "$region" \
      --create-bucket-configuration LocationConstraint="$region"
  fi
fi
aws s3api put-public-access-block --bucket "$bucket" --public-access-block-configuration \
  BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
aws s3api put-bucket-encryption --bucket "$bucket" --server-side-encryption-configuration \
  '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
aws s3api put-bucket-ownership-controls --bucket "$bucket" \
  --ownership-controls 'Rules=[{ObjectOwnership=BucketOwnerEnforced}]'

policy=$(sed "s/xplore-faceauth-prod/$bucket/g" "$here/iam-policy.json")
aws iam get-role --role-name "$role" >/dev/null 2>&1 ||
  aws iam create-role --role-name "$role" --assume-role-policy-document "file://$here/trust-policy.json"
aws iam put-role-policy --role-name "$role" --policy-name xplore-faceauth-s3 --policy-document "$policy"
aws iam get-instance-profile --instance-profile-name "$role" >/dev/null 2>&1 || {
  aws iam create-instance-profile --instance-profile-name "$role"
  aws iam add-role-to-instance-profile --instance-profile-name "$role" --role-name "$role"
}
echo "bucket $bucket and instance profile $role are ready."
echo "launch:  aws ec2 run-instances --image-id <debian-12-ami> --instance-type c7i.large \\"
echo "           --iam-instance-profile Name=$role --user-data file://$here/user-data.sh ..."
