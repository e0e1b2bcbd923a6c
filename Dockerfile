# mirrorlb: the balancer (default command) and `mirrorlb sim` (the license-free compose
# stack runs its simulated members from this same image with `command: sim --name ...`).
#
#   docker build -t mirrorlb .
#   docker run -v $PWD/mirrorlb.yml:/etc/mirrorlb/mirrorlb.yml:ro -p 1972:1972 mirrorlb

# --- build: compile TypeScript, then keep exactly what `npm pack` would publish --------
FROM node:26-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts off here: `prepare` (tsc) needs the sources, which are copied next.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
RUN npm run build \
 && npm pack --ignore-scripts --pack-destination /tmp >/dev/null \
 && mkdir /pkg \
 && tar -xzf /tmp/mirrorlb-*.tgz -C /pkg --strip-components=1 \
 && cp package-lock.json /pkg/ \
 && cd /pkg \
 && npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm cache clean --force

# --- runtime: production dependencies only, unprivileged -------------------------------
FROM node:26-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /pkg /app
# No config is baked in: mount one at /etc/mirrorlb/mirrorlb.yml (the compose stacks do).
RUN mkdir -p /etc/mirrorlb
USER node
# 1972/11972: the two mirror sets of the compose stacks; 9090: admin (metrics, status page).
EXPOSE 1972 11972 9090
# /healthz answers 200 while the process runs. Asked with bash alone (node:26-slim has no
# curl, and starting a second node costs seconds on a busy host, more than the timeout);
# MIRRORLB_ADMIN_PORT names the port when a config moves admin off 9090.
# A container that runs `sim` instead overrides this check (see compose/sim.yml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${MIRRORLB_ADMIN_PORT:-9090} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 3 status <&3 && [[ $status == 'HTTP/1.1 200 '* ]]"]
ENTRYPOINT ["node", "/app/bin/mirrorlb.js"]
CMD ["--config", "/etc/mirrorlb/mirrorlb.yml"]
