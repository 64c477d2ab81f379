//! Skeleton: see README.md for what is built.
