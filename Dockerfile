# syntax=docker/dockerfile:1
# apimount controller image: build with cargo-chef so the dependency layer is
# cached, run on distroless as a non-root user.

FROM rust:1.95-bookworm AS chef
WORKDIR /src
RUN cargo install cargo-chef --locked --version 0.1.78

FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin apimount
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin apimount

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/apimount /usr/local/bin/apimount
ENV APIMOUNT_MANIFESTS=/manifests \
    APIMOUNT_ADMIN_ADDR=0.0.0.0:9090 \
    APIMOUNT_LOG_FORMAT=json
EXPOSE 9090
# distroless nonroot is uid 65532
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["apimount", "healthcheck", "--admin-addr", "127.0.0.1:9090"]
ENTRYPOINT ["apimount"]
CMD ["run"]
