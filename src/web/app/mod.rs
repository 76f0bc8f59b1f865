//! The support-lead workspace under `/app` (sign-in, inbox, task pages): to be built on the
//! same use cases as the API and the customer pages.
