# syntax=docker/dockerfile:1
# Multi-stage build of the cmk-operator image: a pinned Rust toolchain builds
# the release binary as deploy/image/build does (`--no-default-features`);
# the runtime stage is distroless (no shell, no package manager), non-root.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY src ./src
# Reproducible: fixed toolchain, locked dependencies, no timestamps embedded.
# No default features: the image carries no embedded simulator and none of
# its fixed credentials. The cache mounts keep the registry and compiled
# dependencies across builds (BuildKit).
ENV SOURCE_DATE_EPOCH=0
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin cmk-operator \
    && mkdir -p /out && cp target/release/cmk-operator /out/cmk-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cmk-operator /usr/local/bin/cmk-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cmk-operator"]
# `run` manages real Azure: its settings come from the environment
# (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or
# AZURE_FEDERATED_TOKEN_FILE, CMK_FIRST_PARTY_PRINCIPAL_ID), and without them it
# exits at once naming each missing one. It never falls back to the simulator.
CMD ["run"]
