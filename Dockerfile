# PatroniYarp container: build with the .NET SDK, run on the ASP.NET runtime as a non-root user.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY PatroniYarp.sln Directory.Build.props appsettings.json ./
COPY src/ src/
RUN dotnet publish src/PatroniYarp -c Release -o /app --nologo

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
# Mount your configuration at /etc/patroniyarp/patroni.yaml (edits are picked up live; SIGHUP re-reads at once).
COPY patroni.yaml /etc/patroniyarp/patroni.yaml
USER app
# 8009: admin API (set listen_address to 0.0.0.0:8009 to reach it from outside the container); 6432/6433: sample TCP ports.
EXPOSE 8009 6432 6433
# SIGTERM lets open sessions drain (drain_timeout) before the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dotnet", "PatroniYarp.dll", "/etc/patroniyarp/patroni.yaml"]
