//! The AWS SDK edge shared by the `aws` provider and the `elb` balancer: its configuration (retries off, so the
//! provider's bounded retry is the one policy) and the classification of SDK errors as transient or permanent.

use std::future::Future;

use crate::cloud::provider::CloudError;

/// The SDK configuration for `region`, `endpoint_url` and `profile`, with the SDK's retries off.
pub async fn sdk_config(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    profile: Option<&str>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(u) = endpoint_url {
        loader = loader.endpoint_url(u);
    }
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    loader.load().await
}

/// Error codes that mean "try again later" whatever the HTTP status.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "EC2ThrottledException",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Turns an SDK error into a [`CloudError`]: transient for throttling, 5xx, timeouts and connection failures,
/// permanent otherwise; the text has the AWS error code and message.
pub fn classify<E>(
    op: &str,
    err: aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
) -> CloudError
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_ec2::error::{DisplayErrorContext, SdkError};
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("Unknown");
            let message = se.err().message().unwrap_or("(no message)");
            let text = format!("{code}: {message} (HTTP {status})");
            if status >= 500 || status == 429 || TRANSIENT_CODES.contains(&code) {
                CloudError::transient(op, text)
            } else {
                CloudError::permanent(op, text)
            }
        }
        SdkError::ConstructionFailure(_) => {
            CloudError::permanent(op, format!("{}", DisplayErrorContext(&err)))
        }
        _ => CloudError::transient(op, format!("{}", DisplayErrorContext(&err))),
    }
}

/// Wraps an SDK call (any AWS service) so that [`Retry::run`] sees [`CloudError`]s.
pub trait Classified<T> {
    /// Awaits the call and classifies its error.
    fn classified(self, op: &'static str) -> impl Future<Output = Result<T, CloudError>> + Send;
}

impl<F, T, E> Classified<T> for F
where
    F: Future<
            Output = Result<
                T,
                aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
            >,
        > + Send,
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    async fn classified(self, op: &'static str) -> Result<T, CloudError> {
        self.await.map_err(|e| classify(op, e))
    }
}
