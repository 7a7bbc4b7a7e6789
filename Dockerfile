# syntax=docker/dockerfile:1
# Multi-stage build of the cmk-operator image: a pinned Rust toolchain builds
# the release binary with the same `cargo build --release --locked` CI uses;
# the runtime stage is distroless (no shell, no package manager), non-root.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first so edits to src/ reuse the cached dependency layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
# Reproducible: fixed toolchain, locked dependencies, no timestamps embedded.
ENV SOURCE_DATE_EPOCH=0
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin cmk-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/cmk-operator /usr/local/bin/cmk-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cmk-operator"]
# `run` manages real Azure: its settings come from the environment
# (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or
# AZURE_FEDERATED_TOKEN_FILE, CMK_FIRST_PARTY_PRINCIPAL_ID), and without them it
# exits at once naming each missing one. It never falls back to the simulator.
CMD ["run"]
