namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>The cluster script itself, where no running cluster is needed.</summary>
public sealed class PatroniClusterScriptTests
{
    [Fact]
    public async Task StatusAsync_ClusterLeftWithoutEtcd_AnswersDown()
    {
        // What a reboot or a killed run leaves behind: the members' configs, and an etcd pidfile naming a process that
        // is not etcd. patronictl retried the missing etcd for ever, and scripts/test.sh (hence CI) waited on it.
        var directory = Directory.CreateTempSubdirectory("patroniyarp-stale-");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "pg0.yml"), "scope: demo\nname: pg0\netcd3:\n  hosts: 127.0.0.1:1\n");
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "etcd.pid"), $"{Environment.ProcessId}\n");
            var script = new PatroniClusterScript(PatroniClusterScript.FindRepoRoot(), directory.FullName);

            var status = await script.StatusAsync();

            Assert.False(status.Healthy);
            Assert.Contains("cluster is down (etcd is not running", status.Output);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
