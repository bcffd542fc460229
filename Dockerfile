# PatroniYarp container: build with the .NET SDK, run on the ASP.NET runtime as a non-root user.
# tests/PatroniYarp.IntegrationTests/Diagnostics/PublishedOutputTests.cs runs this file's publish, ENTRYPOINT and
# HEALTHCHECK steps (there is no Docker engine on the test machine): keep them one line each, in JSON form.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY PatroniYarp.sln Directory.Build.props appsettings.json ./
COPY src/ src/
RUN dotnet publish src/PatroniYarp -c Release -o /app --nologo

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
# Kestrel's endpoints come from patroni.yaml only (listen_address and the ports), not the image's default 8080.
ENV ASPNETCORE_HTTP_PORTS=
# Mount the configuration at /etc/patroniyarp/patroni.yaml (a ConfigMap in Kubernetes); edits are picked up live and
# SIGHUP re-reads at once. Set listen_address to 0.0.0.0:8009 so the admin API (/metrics, /healthz, /ui) is reachable.
# JSON logs: -e Logging__Console__FormatterName=json.
# The image's non-root user (uid 1654).
USER $APP_UID
# 8009: admin API; 6432/6433: the sample's PostgreSQL ports (use the listen ports of your patroni.yaml).
EXPOSE 8009 6432 6433
# SIGTERM stops accepting and lets open sessions drain for drain_timeout seconds before the process exits;
# give `docker stop -t` / terminationGracePeriodSeconds a little more than that.
STOPSIGNAL SIGTERM
# No curl or wget in the runtime image: the app checks itself (exit 0 on a 2xx from /healthz).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["dotnet", "/app/PatroniYarp.dll", "--healthcheck", "http://127.0.0.1:8009/healthz"]
ENTRYPOINT ["dotnet", "/app/PatroniYarp.dll", "/etc/patroniyarp/patroni.yaml"]
