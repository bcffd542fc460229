using System.Runtime.InteropServices;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Configuration;

/// <summary>Editing patroni.yaml while PatroniYarp runs, and starting it on a bad file.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class ConfigurationReloadTests
{
    [Fact]
    public async Task Reload_InvalidEdit_KeepsRunningConfigAndLogsError()
    {
        var admin = FreePort.Next();
        var yaml = TestYaml.Config(admin, TestYaml.Port("master", FreePort.Next(), "leader"));
        await using var proxy = await PatroniYarpProcess.StartAsync(yaml, admin);

        await proxy.WriteConfigAsync(yaml.Replace("roles: [leader]", "roles: [lead]"));

        await proxy.WaitForOutputAsync(l => l.Contains("roles") && l.Contains("lead"), "an error naming the bad role");
        var ports = (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("demo").GetProperty("ports");
        Assert.Equal("leader", ports.GetProperty("master").GetProperty("roles")[0].GetString());
        Assert.False(proxy.HasExited);
    }

    [Fact]
    public async Task Reload_ValidEditAddingPort_AppearsInClusters()
    {
        var admin = FreePort.Next();
        var master = TestYaml.Port("master", FreePort.Next(), "leader");
        await using var proxy = await PatroniYarpProcess.StartAsync(TestYaml.Config(admin, master), admin);

        await proxy.WriteConfigAsync(WithReplicasPort(admin, master));

        await WaitForReplicasPortAsync(proxy, "the added port in /clusters");
    }

    [Fact]
    public async Task Reload_KubernetesConfigMapUpdate_AppearsInClusters()
    {
        // A ConfigMap volume as the kubelet writes it: patroni.yaml -> ..data/patroni.yaml and ..data -> a directory
        // per version; an update writes a new directory and swaps ..data in one rename, leaving patroni.yaml untouched.
        var volume = Directory.CreateTempSubdirectory("patroniyarp-configmap-").FullName;
        try
        {
            var admin = FreePort.Next();
            var master = TestYaml.Port("master", FreePort.Next(), "leader");
            PublishConfigMap(volume, "..v1", TestYaml.Config(admin, master));
            File.CreateSymbolicLink(Path.Combine(volume, "patroni.yaml"), "..data/patroni.yaml");
            await using var proxy = await PatroniYarpProcess.StartAsync(yaml: null, admin, "/", Path.Combine(volume, "patroni.yaml"));

            PublishConfigMap(volume, "..v2", WithReplicasPort(admin, master));

            await WaitForReplicasPortAsync(proxy, "the port added by the ConfigMap update in /clusters");
        }
        finally
        {
            Directory.Delete(volume, recursive: true);
        }
    }

    [Fact]
    public async Task Start_FromADirectoryTree_HoldsNoInotifyWatchPerDirectoryAndStillReloads()
    {
        // As under systemd, whose working directory (the content root, where appsettings.json is looked for) is /.
        var root = Directory.CreateTempSubdirectory("patroniyarp-tree-").FullName;
        try
        {
            const int Directories = 300;
            for (var i = 0; i < Directories; i++)
            {
                Directory.CreateDirectory(Path.Combine(root, $"d{i}"));
            }
            var admin = FreePort.Next();
            var master = TestYaml.Port("master", FreePort.Next(), "leader");
            var config = Path.Combine(root, "patroni.yaml");
            File.WriteAllText(config, TestYaml.Config(admin, master));
            await using var proxy = await PatroniYarpProcess.StartInAsync(root, config, admin);

            var watches = InotifyWatches(proxy.Pid);
            Assert.True(watches < Directories, $"PatroniYarp holds {watches} inotify watches for a tree of {Directories + 1} directories.");

            await File.WriteAllTextAsync(config, WithReplicasPort(admin, master));
            await WaitForReplicasPortAsync(proxy, "the added port in /clusters");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task Start_InvalidConfig_ExitsNonZeroNamingFileAndKey()
    {
        var (exitCode, output) = await PatroniYarpProcess.RunToExitAsync(
            TestYaml.Config(FreePort.Next(), TestYaml.Port("master", FreePort.Next(), "lead")));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("patroni.yaml", output);
        Assert.Contains("roles", output);
    }

    /// <summary>The configuration of <paramref name="master"/> plus a replicas port.</summary>
    private static string WithReplicasPort(int admin, string master) =>
        TestYaml.Config(admin, master + TestYaml.Port("replicas", FreePort.Next(), "sync, async"));

    private static Task WaitForReplicasPortAsync(PatroniYarpProcess proxy, string what) => ProxyState.WaitForPortAsync(proxy, "replicas", what);

    /// <summary>Writes <paramref name="yaml"/> into a new version directory and points ..data at it in one rename, as the kubelet does.</summary>
    private static void PublishConfigMap(string volume, string version, string yaml)
    {
        Directory.CreateDirectory(Path.Combine(volume, version));
        File.WriteAllText(Path.Combine(volume, version, "patroni.yaml"), yaml);
        var link = Path.Combine(volume, "..data_tmp");
        File.CreateSymbolicLink(link, version);
        // rename(2) itself: File.Move does not move a link to a directory.
        if (Rename(link, Path.Combine(volume, "..data")) != 0)
        {
            throw new IOException($"rename {link} failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>The inotify watches a process holds, from /proc (one "inotify wd:" line per watch).</summary>
    private static int InotifyWatches(int pid)
    {
        var watches = 0;
        foreach (var fd in new DirectoryInfo($"/proc/{pid}/fd").EnumerateFileSystemInfos())
        {
            if (fd.LinkTarget == "anon_inode:inotify")
            {
                watches += File.ReadLines($"/proc/{pid}/fdinfo/{fd.Name}").Count(line => line.StartsWith("inotify wd:", StringComparison.Ordinal));
            }
        }
        return watches;
    }

    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename(string oldPath, string newPath);
}
