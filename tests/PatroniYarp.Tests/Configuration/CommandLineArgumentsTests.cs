using PatroniYarp.Configuration;

namespace PatroniYarp.Tests.Configuration;

public sealed class CommandLineArgumentsTests
{
    [Fact]
    public void Parse_NoArguments_NothingSet()
    {
        var cli = CommandLineArguments.Parse([]);

        Assert.Null(cli.ConfigPath);
        Assert.Null(cli.Error);
        Assert.False(cli.ShowHelp);
        Assert.False(cli.Verbose);
        Assert.False(cli.CheckConfig);
        Assert.Empty(cli.HostArgs);
    }

    [Theory]
    [InlineData("/etc/patroni.yaml")]
    [InlineData("--config", "/etc/patroni.yaml")]
    [InlineData("--config=/etc/patroni.yaml")]
    [InlineData("-config", "/etc/patroni.yaml")]
    [InlineData("-config=/etc/patroni.yaml")]
    public void Parse_ConfigPathInEveryForm_SetsConfigPath(params string[] args)
    {
        var cli = CommandLineArguments.Parse(args);

        Assert.Null(cli.Error);
        Assert.Equal("/etc/patroni.yaml", cli.ConfigPath);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("-help")]
    public void Parse_Help_ShowsHelp(string arg)
    {
        var cli = CommandLineArguments.Parse([arg]);

        Assert.Null(cli.Error);
        Assert.True(cli.ShowHelp);
    }

    [Theory]
    [InlineData("--verbose")]
    [InlineData("-verbose")]
    public void Parse_Verbose_SetsVerbose(string arg)
    {
        var cli = CommandLineArguments.Parse(["-config", "config.yml", arg]);

        Assert.Null(cli.Error);
        Assert.True(cli.Verbose);
        Assert.Equal("config.yml", cli.ConfigPath);
    }

    [Fact]
    public void Parse_CheckConfigWithFile_ChecksThatFile()
    {
        var cli = CommandLineArguments.Parse(["--check-config", "x.yaml"]);

        Assert.Null(cli.Error);
        Assert.True(cli.CheckConfig);
        Assert.Equal("x.yaml", cli.ConfigPath);
    }

    [Fact]
    public void Parse_CheckConfigWithoutFile_ChecksTheDefaultOrPositional()
    {
        Assert.Null(CommandLineArguments.Parse(["--check-config"]).ConfigPath);
        var cli = CommandLineArguments.Parse(["--check-config", "--verbose"]);
        Assert.True(cli.CheckConfig);
        Assert.True(cli.Verbose);
        var positional = CommandLineArguments.Parse(["x.yaml", "--check-config"]);
        Assert.True(positional.CheckConfig);
        Assert.Equal("x.yaml", positional.ConfigPath);
    }

    [Fact]
    public void Parse_KeyValueArguments_PassedToTheHost()
    {
        var cli = CommandLineArguments.Parse(["p.yaml", "--environment=Development", "--clusters:main:hosts:0=http://h:8008", "--urls=http://127.0.0.1:0"]);

        Assert.Null(cli.Error);
        Assert.Equal("p.yaml", cli.ConfigPath);
        Assert.Equal(["--environment=Development", "--clusters:main:hosts:0=http://h:8008", "--urls=http://127.0.0.1:0"], cli.HostArgs);
    }

    [Fact]
    public void Parse_SecondPositional_ErrorNamesIt()
    {
        var cli = CommandLineArguments.Parse(["a.yaml", "b.yaml"]);

        Assert.Contains("'b.yaml'", cli.Error);
        Assert.Contains("'a.yaml'", cli.Error);
    }

    [Fact]
    public void Parse_ConfigGivenTwice_Error()
    {
        var cli = CommandLineArguments.Parse(["a.yaml", "--config", "b.yaml"]);

        Assert.Contains("'b.yaml'", cli.Error);
    }

    [Theory]
    [InlineData("--frobnicate")]
    [InlineData("-x")]
    [InlineData("--urls")]
    [InlineData("-key=value")]
    public void Parse_UnknownBareOption_ErrorNamesIt(string arg)
    {
        var cli = CommandLineArguments.Parse([arg]);

        Assert.Equal($"unknown option '{arg}'", cli.Error);
    }

    [Theory]
    [InlineData("--config")]
    [InlineData("-config")]
    public void Parse_ConfigWithoutPath_Error(string arg)
    {
        Assert.Equal($"{arg} needs a file path", CommandLineArguments.Parse([arg]).Error);
        Assert.Equal($"{arg} needs a file path", CommandLineArguments.Parse([arg, "--verbose"]).Error);
    }

    [Fact]
    public void Usage_ListsEveryForm()
    {
        foreach (var form in new[] { "CONFIG.yaml", "--config PATH", "--config=PATH", "-config PATH", "--check-config [PATH]", "--verbose", "-verbose", "--help", "-h", "-help", "--key=value" })
        {
            Assert.Contains(form, CommandLineArguments.Usage);
        }
    }
}
